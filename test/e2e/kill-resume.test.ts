/**
 * kill -9 of the real training job process (functions/train/main.ts, as the
 * embedded default and AWS Batch run it) at a chosen point, then the retry that
 * Batch or a re-upload would start with the same environment: every job kind
 * resumes from its last checkpoint, and a kill while publishing never leaves a
 * half-written version listed or served.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readJobStatus } from '../../shared/jobs/status.js';
import { listVersions, readAlias, readMetadata, resolveModel, versionPrefix } from '../../shared/models/registry.js';
import { getJson, type ObjectStore } from '../../shared/ports/object-store.js';
import { tempStore } from '../helpers/temp-store.js';
import { COLOURS, FAST, writeDataset, writeTinyBase, type DatasetOptions, tonesExtending } from '../unit/transfer/fixtures.js';

const ROOT = path.resolve(__dirname, '../..');

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Runs the training job as a child process; with `killWhen`, sends SIGKILL as soon as its output (JSON log lines on stdout, errors on stderr) matches it. */
function runJobProcess(env: Record<string, string>, killWhen?: RegExp): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--import', './test/helpers/stall-rename.ts', 'functions/train/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const watch = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (killWhen?.test(output) && child.exitCode === null) child.kill('SIGKILL');
    };
    child.stdout.on('data', watch);
    child.stderr.on('data', watch);
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, output }));
  });
}

describe('kill -9 of a training job, then its retry', () => {
  let store: ObjectStore;
  let root: string;
  let cleanup: () => Promise<void>;
  let headsVersion: string;

  beforeAll(async () => {
    ({ store, root, cleanup } = await tempStore('tl-kill-'));
    await writeTinyBase(store);
  });
  afterAll(async () => cleanup());

  /** Prepares a dataset, kills its job where `killWhen` matches, and retries it; returns both runs and the outcome. */
  async function killAndRetry(o: DatasetOptions, killWhen: RegExp, extraEnv: Record<string, string> = {}) {
    const { preparedPrefix, jobId } = await writeDataset(store, o);
    const env = { BUCKET_DIR: root, TL_JOB_ID: jobId, TL_PREPARED_PREFIX: preparedPrefix };
    const killed = await runJobProcess({ ...env, ...extraEnv }, killWhen);
    const afterKill = await readJobStatus(store, jobId);
    return {
      killed,
      afterKill,
      retry: async () => {
        const retried = await runJobProcess(env);
        const status = (await readJobStatus(store, jobId))!;
        expect(retried.code, `${retried.output}\n${JSON.stringify(status.error)}`).toBe(0);
        const report = await getJson<Record<string, any>>(store, `${versionPrefix(status.model, status.version!)}/report.json`);
        return { retried, status, report };
      },
    };
  }

  it('a heads job killed after epoch 3 resumes there instead of starting over', async () => {
    // Act
    const run = await killAndRetry(
      { dataset: 'colours', hash: 'c1', classes: COLOURS, spec: { base: 'tiny', training: { ...FAST, epochs: 30, patience: 30 } } },
      /epoch 3\/30 /,
    );
    const { retried, status, report } = await run.retry();

    // Assess
    expect(run.killed.signal).toBe('SIGKILL');
    expect(run.afterKill?.state).toBe('running');
    expect(status.state).toBe('succeeded');
    expect(report.training.resumedFromEpoch).toBeGreaterThanOrEqual(3);
    expect(report.training.history).toHaveLength(30);
    expect(retried.output).not.toMatch(/\bepoch 1\/30 /);
    expect(await store.list(`jobs/${status.jobId}/checkpoint/`)).toEqual([]);
    headsVersion = status.version!;
  }, 240_000);

  it('a fine-tuning job killed while fine-tuning keeps its heads and resumes the fine-tuning epochs', async () => {
    // Act
    const run = await killAndRetry(
      {
        dataset: 'colours-ft',
        hash: 'c2',
        classes: COLOURS,
        spec: { base: 'tiny', fineTune: { layers: 2, epochs: 8, learningRate: 0.001 }, training: FAST },
      },
      /fine-tuning [^\n]*: epoch 2 /,
    );
    const { retried, status, report } = await run.retry();

    // Assess: the heads came whole from their checkpoint, fine-tuning from its own
    expect(run.killed.signal).toBe('SIGKILL');
    expect(status.state).toBe('succeeded');
    expect(retried.output).toMatch(/resuming from the checkpoint after epoch 15/);
    expect(retried.output).toMatch(/resuming fine-tuning from the checkpoint after epoch [2-8]/);
    expect(retried.output).not.toMatch(/fine-tuning [^\n]*: epoch 1 /);
    const ft = report.transfer.fineTune;
    expect(ft.resumedFromEpoch).toBeGreaterThanOrEqual(2);
    expect(ft.history.length).toBeGreaterThanOrEqual(ft.resumedFromEpoch);
    expect(ft.layers).toEqual(['c2', 'emb']);
    expect(await store.list(`jobs/${status.jobId}/checkpoint/`)).toEqual([]);
  }, 240_000);

  it('a continual job killed after epoch 3 resumes there', async () => {
    // Act: extend the heads job's model with a new task
    const run = await killAndRetry(
      tonesExtending(`colours@${headsVersion}`, 'c3', {
        training: { ...FAST, epochs: 20, patience: 20 },
        promotion: { margin: 1 },
      }),
      /epoch 3\/20 \(extending/,
    );
    const { retried, status, report } = await run.retry();

    // Assess
    expect(run.killed.signal).toBe('SIGKILL');
    expect(status.state).toBe('succeeded');
    expect(report.training.resumedFromEpoch).toBeGreaterThanOrEqual(3);
    expect(report.training.history).toHaveLength(20);
    expect(retried.output).not.toMatch(/\bepoch 1\/20 /);
    expect(report.transfer.continual).toMatchObject({ added: ['tone'] });
  }, 240_000);

  it('a job killed while publishing leaves the served version and the version list as they were; its retry publishes whole', async () => {
    // Prepare
    const servedBefore = (await resolveModel(store, 'colours')).version;
    const versionsBefore = await listVersions(store, 'colours');

    // Act: kill -9 with every file of the new version written but metadata.json
    const run = await killAndRetry(
      { dataset: 'colours', hash: 'c4', classes: COLOURS, spec: { base: 'tiny', training: { ...FAST, epochs: 5 }, promotion: { margin: 1 } } },
      /STALLED before renaming into/,
      { TL_TEST_STALL_RENAME: `models${path.sep}colours${path.sep}v[^${path.sep}]+${path.sep}metadata\\.json$` },
    );

    // Assess: the half-written version is on disk, and nothing lists or serves it
    expect(run.killed.signal).toBe('SIGKILL');
    const half = run.killed.output.match(/models\/colours\/(v\d{14}-[0-9a-f]{6})\/metadata\.json/)![1];
    expect((await store.list(`${versionPrefix('colours', half)}/`)).map((o) => o.key)).toEqual(
      expect.arrayContaining([`${versionPrefix('colours', half)}/model.json`, `${versionPrefix('colours', half)}/report.json`]),
    );
    expect(await readMetadata(store, 'colours', half)).toBeUndefined();
    expect(await listVersions(store, 'colours')).toEqual(versionsBefore);
    expect((await resolveModel(store, 'colours')).version).toBe(servedBefore);
    await expect(resolveModel(store, 'colours', half)).rejects.toThrow(/has no version/);

    // Act: the retry
    const { status } = await run.retry();

    // Assess: a complete new version, served
    expect(status.state).toBe('succeeded');
    expect(status.version).not.toBe(half);
    expect(await listVersions(store, 'colours')).toEqual([...versionsBefore, status.version]);
    expect((await readAlias(store, 'colours', 'latest'))?.version).toBe(status.version);
  }, 240_000);
});
