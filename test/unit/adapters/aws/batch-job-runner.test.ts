import { BatchClient, DescribeJobsCommand, ListJobsCommand, SubmitJobCommand, TerminateJobCommand } from '@aws-sdk/client-batch';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { BatchJobRunner, batchJobName, jobStateOf } from '../../../../shared/adapters/aws/batch-job-runner.js';
import { createBatchJobRunner } from '../../../../shared/adapters/aws/index.js';
import { jobIdFor } from '../../../../shared/jobs/status.js';
import { PlatformEnvSchema } from '../../../../shared/schemas/env.js';

const QUEUE = 'arn:aws:batch:us-east-1:123456789012:job-queue/TrainQueue';
const DEFINITION = 'arn:aws:batch:us-east-1:123456789012:job-definition/Train:3';

describe('BatchJobRunner', () => {
  const client = new BatchClient({ region: 'us-east-1' });
  const batch = mockClient(client);
  let runner: BatchJobRunner;
  const jobId = jobIdFor('pets', 'a1b2c3d4e5f60718293a4b5c6d7e8f90');
  const request = { jobId, env: { TL_JOB_ID: jobId, TL_PREPARED_PREFIX: 'prepared/pets/a1b2c3d4', STORE_KIND: 's3' } };

  beforeEach(() => {
    batch.reset();
    runner = new BatchJobRunner({ jobQueue: QUEUE, jobDefinition: DEFINITION, client });
  });

  it('submits with the job id as the Batch job name and the env as container overrides', async () => {
    // Prepare: no job of that name yet
    batch.on(ListJobsCommand).resolves({ jobSummaryList: [] });
    batch.on(SubmitJobCommand).resolves({ jobId: 'batch-1', jobName: jobId });

    // Act
    const out = await runner.submit(request);

    // Assess
    expect(out).toEqual({ runnerJobId: 'batch-1' });
    expect(batch).toHaveReceivedCommandWith(ListJobsCommand, { jobQueue: QUEUE, filters: [{ name: 'JOB_NAME', values: [jobId] }] });
    expect(batch).toHaveReceivedCommandExactlyOnceWith(SubmitJobCommand, {
      jobName: jobId,
      jobQueue: QUEUE,
      jobDefinition: DEFINITION,
      containerOverrides: {
        environment: [
          { name: 'TL_JOB_ID', value: jobId },
          { name: 'TL_PREPARED_PREFIX', value: 'prepared/pets/a1b2c3d4' },
          { name: 'STORE_KIND', value: 's3' },
        ],
      },
    });
  });

  it('returns the existing job and submits nothing when a live job of that name exists', async () => {
    batch.on(ListJobsCommand).resolves({ jobSummaryList: [{ jobId: 'batch-1', jobName: jobId, status: 'RUNNABLE', createdAt: 1 }] });

    const out = await runner.submit(request);

    expect(out).toEqual({ runnerJobId: 'batch-1' });
    expect(batch).not.toHaveReceivedCommand(SubmitJobCommand);
  });

  it('finds a succeeded job on a later page and does not resubmit it', async () => {
    batch
      .on(ListJobsCommand, { nextToken: undefined })
      .resolves({ jobSummaryList: [{ jobId: 'old', jobName: jobId, status: 'FAILED', createdAt: 1 }], nextToken: 't2' });
    batch.on(ListJobsCommand, { nextToken: 't2' }).resolves({ jobSummaryList: [{ jobId: 'done', jobName: jobId, status: 'SUCCEEDED', createdAt: 2 }] });

    expect(await runner.submit(request)).toEqual({ runnerJobId: 'done' });
    expect(batch).toHaveReceivedCommandTimes(ListJobsCommand, 2);
    expect(batch).not.toHaveReceivedCommand(SubmitJobCommand);
  });

  it('submits again when the only job of that name failed', async () => {
    batch.on(ListJobsCommand).resolves({ jobSummaryList: [{ jobId: 'old', jobName: jobId, status: 'FAILED', createdAt: 1 }] });
    batch.on(SubmitJobCommand).resolves({ jobId: 'batch-2', jobName: jobId });

    expect(await runner.submit(request)).toEqual({ runnerJobId: 'batch-2' });
    expect(batch).toHaveReceivedCommandTimes(SubmitJobCommand, 1);
  });

  it('a redelivered request submits once: the second call finds the first job', async () => {
    // Prepare: a fake queue that remembers what was submitted
    const submitted: { jobId: string; jobName: string; status: 'SUBMITTED' }[] = [];
    batch.on(ListJobsCommand).callsFake(() => ({ jobSummaryList: [...submitted] }));
    batch.on(SubmitJobCommand).callsFake((input: { jobName: string }) => {
      const job = { jobId: `batch-${submitted.length + 1}`, jobName: input.jobName, status: 'SUBMITTED' as const };
      submitted.push(job);
      return { jobId: job.jobId, jobName: job.jobName };
    });

    // Act
    const first = await runner.submit(request);
    const second = await runner.submit(request);

    // Assess
    expect(second).toEqual(first);
    expect(batch).toHaveReceivedCommandTimes(SubmitJobCommand, 1);
  });

  it('maps every Batch status to a platform state', () => {
    expect(['SUBMITTED', 'PENDING', 'RUNNABLE', 'STARTING'].map((s) => jobStateOf(s as never))).toEqual(Array(4).fill('submitted'));
    expect(jobStateOf('RUNNING')).toBe('running');
    expect(jobStateOf('SUCCEEDED')).toBe('succeeded');
    expect(jobStateOf('FAILED')).toBe('failed');
  });

  it('describes a job with its state and the most telling reason', async () => {
    batch.on(DescribeJobsCommand, { jobs: ['batch-1'] }).resolves({
      jobs: [
        {
          jobId: 'batch-1',
          jobName: jobId,
          jobQueue: QUEUE,
          jobDefinition: DEFINITION,
          status: 'FAILED',
          startedAt: 1,
          attempts: [{ statusReason: 'Host EC2 (instance i-0abc) terminated.' }],
        },
      ],
    });

    expect(await runner.describe('batch-1')).toEqual({ jobId, runnerJobId: 'batch-1', state: 'failed', reason: 'Host EC2 (instance i-0abc) terminated.' });
  });

  it('describes an unknown job as undefined', async () => {
    batch.on(DescribeJobsCommand).resolves({ jobs: [] });

    expect(await runner.describe('nope')).toBeUndefined();
  });

  it('cancels with TerminateJob and the reason', async () => {
    batch.on(TerminateJobCommand).resolves({});

    await runner.cancel('batch-1', 'superseded by a newer dataset');

    expect(batch).toHaveReceivedCommandExactlyOnceWith(TerminateJobCommand, { jobId: 'batch-1', reason: 'superseded by a newer dataset' });
  });
});

describe('batchJobName', () => {
  it('keeps valid ids as they are', () => {
    expect(batchJobName('train-pets-0123456789abcdef')).toBe('train-pets-0123456789abcdef');
  });

  it('cleans invalid ids deterministically and keeps distinct ids distinct', () => {
    const a = batchJobName('train/pets.v2');
    const b = batchJobName('train/pets_v2');

    expect(a).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/);
    expect(a).toBe(batchJobName('train/pets.v2'));
    expect(a).not.toBe(b);
    expect(batchJobName('x'.repeat(300))).toHaveLength(128);
  });
});

describe('createBatchJobRunner', () => {
  it('needs the queue and definition from the environment', async () => {
    const env = PlatformEnvSchema.parse({ STORE_KIND: 'local', BUCKET_DIR: '/tmp/b', JOB_RUNNER: 'batch', JOB_QUEUE: QUEUE, JOB_DEFINITION: DEFINITION });
    const client = new BatchClient({ region: 'us-east-1' });
    const batch = mockClient(client);
    batch.on(ListJobsCommand).resolves({});
    batch.on(SubmitJobCommand).resolves({ jobId: 'j' });

    await createBatchJobRunner(env, client).submit({ jobId: 'train-x-1', env: {} });

    expect(batch).toHaveReceivedCommandWith(SubmitJobCommand, { jobQueue: QUEUE, jobDefinition: DEFINITION });
  });
});
