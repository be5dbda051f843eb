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

function runMain(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'functions/train/main.ts')], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('train job entry point', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tl-train-main-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('runs the job from its environment contract and exits 0 on success', async () => {
    const store = new FsObjectStore({ root: dir });
    const { preparedPrefix, jobId } = await writePreparedDataset(store, { spec: { base: 'none', training: { epochs: 2 } } });
    const { code, stderr } = await runMain({ STORE_KIND: 'local', BUCKET_DIR: dir, TL_JOB_ID: jobId, TL_PREPARED_PREFIX: preparedPrefix });
    expect(stderr).toMatch(/\[train\] epoch 1\/2/);
    expect(code).toBe(0);
    expect((await readJobStatus(store, jobId))?.state).toBe('succeeded');
  });

  it('exits 1 with a readable line when the environment is incomplete', async () => {
    const { code, stderr } = await runMain({ STORE_KIND: 'local', BUCKET_DIR: dir });
    expect(code).toBe(1);
    expect(stderr).toMatch(/TL_JOB_ID/);
  });

  it('exits 1 after recording a failed status', async () => {
    const store = new FsObjectStore({ root: dir });
    const { preparedPrefix, jobId } = await writePreparedDataset(store, { spec: { base: 'nope' } });
    const { code } = await runMain({ STORE_KIND: 'local', BUCKET_DIR: dir, TL_JOB_ID: jobId, TL_PREPARED_PREFIX: preparedPrefix });
    expect(code).toBe(1);
    expect((await readJobStatus(store, jobId))?.error?.code).toBe('UNKNOWN_BASE_MODEL');
  });
});
