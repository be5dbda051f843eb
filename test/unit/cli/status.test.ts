import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../../../shared/local/cli.js';
import { leaderboardLines, showStatus } from '../../../shared/local/cli-status.js';
import { FakePlatform, captureOutput, jobStatus } from './fake-platform.js';

describe('tl status', () => {
  let platform: FakePlatform | undefined;
  afterEach(async () => {
    await platform?.stop();
    platform = undefined;
  });

  const training = (epoch: number, loss: number) =>
    jobStatus({
      state: 'running',
      phase: 'training',
      progress: 0.2 + epoch * 0.2,
      epoch,
      epochs: 3,
      metrics: { loss, val_loss: loss + 0.1, val_acc: 0.5 + epoch / 10 },
    });

  it('--wait follows the job to success: exit 0, one log line per phase or epoch, summary on stdout', async () => {
    // Prepare: the same epoch is reported twice, which must not print twice in a log.
    platform = await new FakePlatform({
      jobs: [
        jobStatus({ state: 'submitted', progress: 0 }),
        jobStatus({ state: 'running', phase: 'embedding', progress: 0.1 }),
        training(1, 0.9),
        training(1, 0.9),
        training(2, 0.5),
        jobStatus({ state: 'succeeded', phase: 'done', progress: 1, epoch: 3, epochs: 3, version: 'v20250101000000-abcdef', metrics: { val_acc: 0.97 } }),
      ],
    }).start();
    const stdout = captureOutput();
    const stderr = captureOutput();

    // Act
    const code = await runCli(['status', 'shapes', '--wait', '--endpoint', platform.url], { stdout, stderr, env: {}, cwd: '/', pollIntervalMs: 5 });

    // Assess
    expect(code).toBe(0);
    expect(stderr.text().split('\n').filter(Boolean)).toEqual([
      '[....................]   0% submitted',
      '[##..................]  10% running embedding',
      '[########............]  40% running training epoch 1/3 loss 0.900 val_loss 1.000 val_acc 0.600',
      '[############........]  60% running training epoch 2/3 loss 0.500 val_loss 0.600 val_acc 0.700',
      '[####################] 100% succeeded done epoch 3/3 val_acc 0.970',
    ]);
    expect(stdout.text()).toContain('model shapes: succeeded, job job-1');
    expect(stdout.text()).toContain('version v20250101000000-abcdef');
    expect(platform.ofKind('job')).toHaveLength(6);
  });

  it('--wait exits 1 on a failed job and prints its error code and message', async () => {
    // Prepare
    platform = await new FakePlatform({
      jobs: [
        training(1, 0.9),
        jobStatus({ state: 'failed', phase: 'preprocessing', error: { code: 'TOO_FEW_EXAMPLES', message: 'label "b" has 1 image; need at least 2' } }),
      ],
    }).start();
    const stderr = captureOutput();

    // Act
    const code = await showStatus({ endpoint: platform.url, model: 'shapes', wait: true, pollIntervalMs: 5, stdout: captureOutput(), stderr });

    // Assess
    expect(code).toBe(1);
    expect(stderr.text()).toContain('job job-1 failed: TOO_FEW_EXAMPLES: label "b" has 1 image; need at least 2');
  });

  it('--wait exits 1 on a cancelled job', async () => {
    // Prepare
    platform = await new FakePlatform({ jobs: [jobStatus({ state: 'cancelled' })] }).start();
    const stderr = captureOutput();

    // Act
    const code = await showStatus({ endpoint: platform.url, model: 'shapes', wait: true, pollIntervalMs: 5, stdout: captureOutput(), stderr });

    // Assess
    expect(code).toBe(1);
    expect(stderr.text()).toContain('job job-1 cancelled: no reason given');
  });

  it('--wait exits 2 when the job does not end before the timeout', async () => {
    // Prepare
    platform = await new FakePlatform({ jobs: [training(1, 0.9)] }).start();
    const stderr = captureOutput();
    const started = Date.now();

    // Act
    const code = await runCli(['status', 'shapes', '--wait', '--timeout', '0.2', '--endpoint', platform.url], {
      stdout: captureOutput(),
      stderr,
      env: {},
      cwd: '/',
      pollIntervalMs: 20,
    });

    // Assess
    expect(code).toBe(2);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(stderr.text()).toContain('timed out after 0.2s waiting for model shapes: job job-1 is running (training)');
    expect(platform.ofKind('job').length).toBeGreaterThan(2);
  });

  it('--wait keeps waiting while the job is not found yet (404 right after an upload)', async () => {
    // Prepare
    platform = await new FakePlatform({ jobs: [404, 404, 404, jobStatus({ state: 'succeeded', progress: 1 })] }).start();
    const stderr = captureOutput();

    // Act
    const code = await showStatus({ endpoint: platform.url, model: 'shapes', wait: true, pollIntervalMs: 5, stdout: captureOutput(), stderr });

    // Assess
    expect(code).toBe(0);
    expect(stderr.text().split('\n').filter(Boolean)).toEqual(['waiting for a training job for model shapes...', '[####################] 100% succeeded']);
  });

  it('--wait times out with exit 2 when no job ever appears', async () => {
    // Prepare
    platform = await new FakePlatform({ jobs: [404] }).start();
    const stderr = captureOutput();

    // Act
    const code = await showStatus({
      endpoint: platform.url,
      model: 'shapes',
      wait: true,
      timeoutSeconds: 0.1,
      pollIntervalMs: 10,
      stdout: captureOutput(),
      stderr,
    });

    // Assess
    expect(code).toBe(2);
    expect(stderr.text()).toContain('no job started');
  });

  it('--wait with --since ignores the job of an earlier upload', async () => {
    // Prepare: an old succeeded job, then the new one.
    platform = await new FakePlatform({
      jobs: [
        jobStatus({ jobId: 'old', state: 'succeeded', createdAt: '2025-01-01T00:00:00.000Z' }),
        jobStatus({ jobId: 'new', state: 'failed', createdAt: '2025-06-01T00:00:00.000Z', error: { code: 'EMPTY_DATASET', message: 'no images' } }),
      ],
    }).start();
    const stderr = captureOutput();

    // Act
    const code = await runCli(['status', 'shapes', '--wait', '--since', '2025-03-01T00:00:00Z', '--endpoint', platform.url], {
      stdout: captureOutput(),
      stderr,
      env: {},
      cwd: '/',
      pollIntervalMs: 5,
    });

    // Assess
    expect(code).toBe(1);
    expect(stderr.text()).toContain('job new failed: EMPTY_DATASET: no images');
  });

  it('redraws one line with \\r on a terminal', async () => {
    // Prepare
    platform = await new FakePlatform({ jobs: [training(1, 0.9), training(2, 0.5), jobStatus({ state: 'succeeded', progress: 1 })] }).start();
    const stderr = captureOutput(true);

    // Act
    const code = await showStatus({ endpoint: platform.url, model: 'shapes', wait: true, pollIntervalMs: 5, stdout: captureOutput(), stderr });

    // Assess
    expect(code).toBe(0);
    const text = stderr.text();
    expect(text.startsWith('\r[########............]  40% running training epoch 1/3')).toBe(true);
    expect(text.match(/\r/g)).toHaveLength(3);
    expect(text.match(/\n/g)).toHaveLength(1);
    expect(text.endsWith('\r[####################] 100% succeeded\x1b[K\n')).toBe(true);
  });

  it('prints the representation search as a table: every candidate, the chosen one starred, the verdict', async () => {
    const search = {
      method: 'stratified 5-fold cross-validation …',
      criterion: 'CV accuracy',
      records: 300,
      folds: 5,
      seconds: 6.4,
      leaderboard: [
        { candidate: 'flatten_1', size: 1280, family: 'linear', cvMean: 0.7, cvSd: 0.067, seconds: 1.2, chosen: false },
        { candidate: 'block_13_expand_relu (avg)', size: 576, family: 'linear', cvMean: 0.767, cvSd: 0.054, seconds: 0.9, chosen: true },
        { candidate: 'block_13_expand_relu (avg)', size: 576, family: 'hidden', chosen: false, note: 'not tried: over budget' },
        { candidate: 'flatten_1', size: 1280, family: 'hidden', folds: 3, cvMean: 0.71, cvSd: 0.02, seconds: 4, chosen: false },
        { candidate: 'pixels', size: 3072, family: 'linear', folds: 1, cvMean: 0.4, cvSd: 0, seconds: 0.3, chosen: false, note: 'stopped after 1 of 5 folds' },
      ],
      chosen: 'block_13_expand_relu (avg)',
      verdict: 'block_13_expand_relu (avg) wins by 6.7 points over flatten_1',
    };
    platform = await new FakePlatform({ jobs: [jobStatus({ state: 'succeeded', progress: 1, version: 'v1', search })] }).start();
    const out = captureOutput();
    expect(await runCli(['status', 'shapes', '--endpoint', platform.url], { stdout: out, stderr: captureOutput(), env: {}, cwd: '/' })).toBe(0);
    const lines = out.text().split('\n');
    const start = lines.findIndex((l) => l.startsWith('representation search (CV accuracy, 5-fold CV on 300 records, 6.4 s):'));
    expect(start).toBeGreaterThan(0);
    expect(lines.slice(start + 1, start + 7)).toEqual([
      '    flatten_1                                  0.700 ± 0.067  1.2 s',
      '  * block_13_expand_relu (avg)                 0.767 ± 0.054  0.9 s',
      '    block_13_expand_relu (avg) + hidden layer  not tried: over budget',
      '    flatten_1 + hidden layer (3-fold)          0.710 ± 0.020  4.0 s',
      '    pixels                                     0.400 ± 0.000  0.3 s  (stopped after 1 of 5 folds)',
      '  block_13_expand_relu (avg) wins by 6.7 points over flatten_1',
    ]);
  });

  it('adds each task’s own CV accuracy to a multi-task leaderboard row', () => {
    const lines = leaderboardLines({
      method: 'stratified 5-fold cross-validation …',
      criterion: 'mean over main tasks of CV accuracy / that task’s best',
      records: 300,
      folds: 5,
      seconds: 9,
      leaderboard: [
        {
          candidate: 'block_13_expand_relu (avg)',
          size: 576,
          family: 'linear',
          cvMean: 0.9983,
          cvSd: 0.01,
          seconds: 2,
          chosen: true,
          tasks: { fine: { cvMean: 0.7667, cvSd: 0.02, l2: 0.1 }, coarse: { cvMean: 0.95, cvSd: 0.01, l2: 1 } },
        },
      ],
      chosen: 'block_13_expand_relu (avg)',
      verdict: 'block_13_expand_relu (avg) was the only representation tried',
    });
    expect(lines[1]).toBe('  * block_13_expand_relu (avg)  0.998 ± 0.010  2.0 s  (fine 0.767, coarse 0.950)');
  });

  it('without --wait prints the status once: exit 0 for success, 2 while running', async () => {
    // Prepare
    platform = await new FakePlatform({ jobs: [jobStatus({ state: 'succeeded', progress: 1, version: 'v1' }), training(2, 0.5)] }).start();
    const first = captureOutput();
    const second = captureOutput();

    // Act
    const done = await runCli(['status', 'shapes', '--json', '--endpoint', platform.url], { stdout: first, stderr: captureOutput(), env: {}, cwd: '/' });
    const running = await runCli(['status', 'shapes', '--endpoint', platform.url], { stdout: second, stderr: captureOutput(), env: {}, cwd: '/' });

    // Assess
    expect(done).toBe(0);
    expect(JSON.parse(first.text())).toMatchObject({ jobId: 'job-1', state: 'succeeded', version: 'v1' });
    expect(running).toBe(2);
    expect(second.text()).toContain('model shapes: running (training)');
    expect(second.text()).toContain('progress 60%, epoch 2/3');
    expect(platform.ofKind('job')).toHaveLength(2);
  });

  it('without --wait exits 1 when the model has no job', async () => {
    // Prepare
    platform = await new FakePlatform({ jobs: [404] }).start();
    const stderr = captureOutput();

    // Act
    const code = await runCli(['status', 'shapes', '--endpoint', platform.url], { stdout: captureOutput(), stderr, env: {}, cwd: '/' });

    // Assess
    expect(code).toBe(1);
    expect(stderr.text()).toContain('model shapes has no training job');
  });

  it('stops waiting at once on a wrong API key, with a hint', async () => {
    // Prepare
    platform = await new FakePlatform({ apiKey: 'right', jobs: [training(1, 1)] }).start();
    const stderr = captureOutput();

    // Act
    const code = await runCli(['status', 'shapes', '--wait', '--api-key', 'wrong', '--endpoint', platform.url], {
      stdout: captureOutput(),
      stderr,
      env: {},
      cwd: '/',
      pollIntervalMs: 5,
    });

    // Assess
    expect(code).toBe(1);
    expect(stderr.text()).toContain('missing or wrong API key (INVALID_API_KEY, HTTP 403)');
    expect(stderr.text()).toContain('hint: pass --api-key or set TL_API_KEY');
    expect(platform.events).toHaveLength(1);
  });
});
