import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { tempStore } from '../../helpers/temp-store.js';
import { describeFailure, recordJobStateChange } from '../../../functions/job-events/core.js';
import { handler } from '../../../functions/job-events/handler.js';
import { BatchJobStateChangeEventSchema, type BatchJobStateDetail } from '../../../functions/job-events/schema.js';
import { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { jobStatusKey, readJobStatus } from '../../../shared/jobs/status.js';
import { putJson } from '../../../shared/ports/object-store.js';
import type { JobStatus } from '../../../shared/schemas/job.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/events');
const loadEvent = async (name: string) => JSON.parse(await readFile(path.join(fixtures, name), 'utf8')) as unknown;
const JOB_ID = 'train-pets-a1b2c3d4e5f60718';

function status(patch: Partial<JobStatus> = {}): JobStatus {
  const now = new Date().toISOString();
  return {
    jobId: JOB_ID,
    model: 'pets',
    dataset: 'pets',
    datasetHash: 'a1b2c3d4e5f60718293a',
    state: 'submitted',
    progress: 0,
    metrics: {},
    createdAt: now,
    updatedAt: now,
    ...patch,
  };
}

describe('job-events', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  let store: FsObjectStore;
  let spotFailure: BatchJobStateDetail;

  beforeEach(async () => {
    ({ store, root: root, cleanup } = await tempStore('job-events-'));
    spotFailure = BatchJobStateChangeEventSchema.parse(await loadEvent('aws-batch-job-failed-spot.json')).detail;
  });
  afterEach(async () => {
    vi.unstubAllEnvs();
    await cleanup();
  });

  it('records a job that ran out of Spot retries as failed with a readable reason', async () => {
    // Prepare: the job was submitted and started, then lost its host twice
    await putJson(store, jobStatusKey(JOB_ID), status({ state: 'running', runnerJobId: spotFailure.jobId, progress: 0.4 }));

    // Act
    const outcome = await recordJobStateChange(spotFailure, { store });

    // Assess
    const after = await readJobStatus(store, JOB_ID);
    expect(outcome).toMatchObject({ action: 'recorded', code: 'SPOT_RECLAIMED' });
    expect(after?.state).toBe('failed');
    expect(after?.error?.code).toBe('SPOT_RECLAIMED');
    expect(after?.error?.message).toMatch(/Spot instance 2 time\(s\).*Host EC2 \(instance i-0f1e2d3c4b5a69788\) terminated/);
    expect(after?.progress).toBe(0.4);
  });

  it('records a container that never started, from the real event through the handler', async () => {
    // Prepare: status from the preprocess step, before Batch gave a job id
    await putJson(store, jobStatusKey(JOB_ID), status());
    vi.stubEnv('STORE_KIND', 'local');
    vi.stubEnv('BUCKET_DIR', root);

    // Act
    const outcome = await handler(await loadEvent('aws-batch-job-failed-image-pull.json'));

    // Assess
    const after = await readJobStatus(store, JOB_ID);
    expect(outcome).toMatchObject({ action: 'recorded', code: 'CONTAINER_NEVER_STARTED' });
    expect(after).toMatchObject({ state: 'failed', runnerJobId: '9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4' });
    expect(after?.error?.message).toContain('CannotPullContainerError');
  });

  it('records a job Batch cancelled after waiting in RUNNABLE for capacity as NO_CAPACITY', async () => {
    // Prepare: the job was submitted and never left RUNNABLE
    await putJson(store, jobStatusKey(JOB_ID), status());
    const event = BatchJobStateChangeEventSchema.parse(await loadEvent('aws-batch-job-cancelled-runnable.json'));

    // Act (the core: the handler's store is built once per module, by the test above)
    const outcome = await recordJobStateChange(event.detail, { store });

    // Assess
    const after = await readJobStatus(store, JOB_ID);
    expect(outcome).toMatchObject({ action: 'recorded', code: 'NO_CAPACITY' });
    expect(after).toMatchObject({ state: 'failed', error: { code: 'NO_CAPACITY' } });
    expect(after?.error?.message).toMatch(/no GPU capacity.*RUNNABLE time limit.*CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY/);
    expect(
      describeFailure({
        jobName: JOB_ID,
        jobId: 'j',
        jobQueue: 'q',
        status: 'FAILED',
        attempts: [],
        statusReason: 'Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT',
      }),
    ).toMatchObject({ code: 'NO_CAPACITY', message: expect.stringMatching(/no compute environment can run this job/) });
  });

  it('leaves a job that recorded its own terminal state alone', async () => {
    const own = status({ state: 'failed', runnerJobId: spotFailure.jobId, error: { code: 'TRAINING_DIVERGED', message: 'loss became NaN at epoch 3' } });
    await putJson(store, jobStatusKey(JOB_ID), own);

    const outcome = await recordJobStateChange(spotFailure, { store });

    expect(outcome).toEqual({ action: 'ignored', jobId: JOB_ID, why: 'already failed' });
    expect((await readJobStatus(store, JOB_ID))?.error).toEqual(own.error);
  });

  it('ignores an event about an earlier Batch job of the same name', async () => {
    await putJson(store, jobStatusKey(JOB_ID), status({ state: 'running', runnerJobId: 'a-newer-submission' }));

    const outcome = await recordJobStateChange(spotFailure, { store });

    expect(outcome.action).toBe('ignored');
    expect((await readJobStatus(store, JOB_ID))?.state).toBe('running');
  });

  it('ignores jobs without a status and states other than FAILED', async () => {
    expect(await recordJobStateChange(spotFailure, { store })).toMatchObject({ action: 'ignored', why: expect.stringContaining('no status') });
    expect(await recordJobStateChange({ ...spotFailure, status: 'RUNNING' }, { store })).toMatchObject({ action: 'ignored' });
  });

  it('rejects events that are not Batch job state changes', async () => {
    const event = (await loadEvent('aws-batch-job-failed-spot.json')) as Record<string, unknown>;

    await expect(handler({ ...event, source: 'aws.ec2' })).rejects.toThrow();
  });

  it('names timeouts, memory and exit codes', () => {
    const base = { ...spotFailure, statusReason: undefined };
    expect(describeFailure({ ...base, statusReason: 'Job attempt duration exceeded timeout', attempts: [{}] }).code).toBe('TIMEOUT');
    expect(
      describeFailure({ ...base, attempts: [{ container: { reason: 'OutOfMemoryError: Container killed due to memory usage', exitCode: 137 } }] }).code,
    ).toBe('OUT_OF_MEMORY');
    expect(describeFailure({ ...base, statusReason: 'Essential container in task exited', attempts: [{ container: { exitCode: 3 } }] })).toMatchObject({
      code: 'JOB_EXITED',
      message: expect.stringContaining('code 3'),
    });
  });
});
