import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { readJobStatus } from '../../../shared/jobs/status.js';
import { writePreparedDataset } from './fixtures.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

type LogLine = Record<string, unknown> & { message?: string; level?: string };

/** Runs the job's entry point; its output is JSON lines (Powertools log lines and EMF metrics), on stdout and stderr. */
function runMain(env: Record<string, string>): Promise<{ code: number | null; lines: LogLine[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'functions/train/main.ts')], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code,
        // Every line must be JSON: JSON.parse throws on any other.
        lines: out
          .split('\n')
          .filter((l) => l.trim())
          .map((l) => JSON.parse(l) as LogLine),
      }),
    );
  });
}

const logLines = (lines: LogLine[]) => lines.filter((l) => typeof l.message === 'string');
const emf = (lines: LogLine[], metric: string) =>
  lines.filter((l) =>
    (l._aws as { CloudWatchMetrics?: Array<{ Metrics: Array<{ Name: string }> }> } | undefined)?.CloudWatchMetrics?.some((m) =>
      m.Metrics.some((x) => x.Name === metric),
    ),
  );

describe('train job entry point', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tl-train-main-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('runs the job from its environment contract and exits 0 on success', async () => {
    const store = new FsObjectStore({ root: dir });
    const { preparedPrefix, jobId } = await writePreparedDataset(store, { spec: { base: 'none', training: { epochs: 2 } } });
    const { code, lines } = await runMain({ STORE_KIND: 'local', BUCKET_DIR: dir, TL_JOB_ID: jobId, TL_PREPARED_PREFIX: preparedPrefix, TL_TENANT: 'acme' });
    expect(code).toBe(0);
    const status = await readJobStatus(store, jobId);
    expect(status?.state).toBe('succeeded');
    // Structured lines: the job's keys on every one, the version once published.
    const logged = logLines(lines);
    expect(logged.some((l) => /epoch 1\/2/.test(l.message!))).toBe(true);
    for (const l of logged) expect(l).toMatchObject({ service: 'train', tenant: 'acme', jobId, model: status?.model });
    expect(logged.at(-1)).toMatchObject({ message: 'job succeeded', version: status?.version });
    // EMF metrics: the job's duration, one per stage, and its end.
    expect(emf(lines, 'JobDuration')).toHaveLength(1);
    expect(emf(lines, 'JobsSucceeded')).toHaveLength(1);
    const stages = emf(lines, 'StageDuration').map((l) => l.stage);
    expect(stages.length).toBeGreaterThan(1);
    for (const l of emf(lines, 'JobDuration')) expect(l).toMatchObject({ service: 'train', tenant: 'acme' });
  });

  it('exits 1 with a readable line when the environment is incomplete', async () => {
    const { code, lines } = await runMain({ STORE_KIND: 'local', BUCKET_DIR: dir });
    expect(code).toBe(1);
    const fatal = logLines(lines).find((l) => l.message === 'fatal');
    expect(fatal?.level).toBe('ERROR');
    expect(JSON.stringify(fatal?.error)).toMatch(/TL_JOB_ID/);
  });

  it('exits 1 after recording a failed status', async () => {
    const store = new FsObjectStore({ root: dir });
    const { preparedPrefix, jobId } = await writePreparedDataset(store, { spec: { base: 'nope' } });
    const { code, lines } = await runMain({ STORE_KIND: 'local', BUCKET_DIR: dir, TL_JOB_ID: jobId, TL_PREPARED_PREFIX: preparedPrefix });
    expect(code).toBe(1);
    expect((await readJobStatus(store, jobId))?.error?.code).toBe('UNKNOWN_BASE_MODEL');
    expect(logLines(lines).at(-1)).toMatchObject({ message: 'job failed', code: 'UNKNOWN_BASE_MODEL', jobId, tenant: 'local' });
    // Failures are counted by error code.
    expect(emf(lines, 'JobsFailed')).toEqual([expect.objectContaining({ code: 'UNKNOWN_BASE_MODEL', JobsFailed: 1 })]);
  });
});
