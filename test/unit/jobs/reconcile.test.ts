import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { tempStore } from '../../helpers/temp-store.js';
import { jobEndCode, readJobStatus, reconcileJobStatus } from '../../../shared/jobs/status.js';
import { putJson } from '../../../shared/ports/object-store.js';
import type { JobDescription } from '../../../shared/ports/job-runner.js';
import { JobStatusSchema } from '../../../shared/schemas/job.js';

describe('reconcileJobStatus', () => {
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ store, cleanup } = await tempStore('tl-reconcile-'));
  });
  afterEach(() => cleanup());

  const running = JobStatusSchema.parse({
    jobId: 'j',
    model: 'm',
    dataset: 'd',
    datasetHash: 'h',
    state: 'running',
    phase: 'training',
    runnerJobId: 'r1',
    createdAt: 'x',
    updatedAt: 'x',
  });
  const runner = (d: JobDescription | undefined | Error) => ({
    describe: async () => {
      if (d instanceof Error) throw d;
      return d;
    },
  });

  const cases: Array<[string, JobDescription | undefined, string, string]> = [
    ['the runner has no record of it', undefined, 'failed', 'JOB_ORPHANED'],
    [
      'its process failed',
      { jobId: 'j', runnerJobId: 'r1', state: 'failed', reason: 'exited with code 1: ENOSPC: no space left on device' },
      'failed',
      'INSUFFICIENT_STORAGE',
    ],
    ['its process exited 0 without recording success', { jobId: 'j', runnerJobId: 'r1', state: 'succeeded' }, 'failed', 'JOB_ORPHANED'],
    ['it was cancelled', { jobId: 'j', runnerJobId: 'r1', state: 'cancelled', reason: 'stopped' }, 'cancelled', 'JOB_CANCELLED'],
  ];
  it.each(cases)('ends a job recorded as running when %s', async (_why, description, state, code) => {
    await putJson(store, 'jobs/j/status.json', running);
    const after = await reconcileJobStatus(store, runner(description), running);
    expect(after).toMatchObject({ state, error: { code } });
    expect(await readJobStatus(store, 'j')).toMatchObject({ state, error: { code } });
  });

  it('leaves a job alone while its runner says it runs, or when the runner cannot be asked', async () => {
    await putJson(store, 'jobs/j/status.json', running);
    expect(await reconcileJobStatus(store, runner({ jobId: 'j', runnerJobId: 'r1', state: 'running' }), running)).toBe(running);
    expect(await reconcileJobStatus(store, runner(new Error('throttled')), running)).toBe(running);
    expect((await readJobStatus(store, 'j'))?.state).toBe('running');
  });

  it('names storage faults by their errno and anything else a crash', () => {
    expect(jobEndCode('fatal: EROFS: read-only file system')).toBe('STORAGE_UNAVAILABLE');
    expect(jobEndCode('ENOSPC: no space left on device')).toBe('INSUFFICIENT_STORAGE');
    expect(jobEndCode('killed by SIGKILL')).toBe('JOB_CRASHED');
    expect(jobEndCode(undefined)).toBe('JOB_CRASHED');
  });
});
