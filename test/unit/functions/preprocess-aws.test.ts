import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchClient, ListJobsCommand, SubmitJobCommand } from '@aws-sdk/client-batch';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import sharp from 'sharp';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../../functions/preprocess/handler.js';
import { BatchJobRunner } from '../../../shared/adapters/aws/batch-job-runner.js';
import { S3ObjectStore } from '../../../shared/adapters/aws/s3-object-store.js';
import { readJobStatus } from '../../../shared/jobs/status.js';
import { getJsonIfExists } from '../../../shared/ports/object-store.js';
import { startLocalS3, type LocalS3 } from '../../contract/s3rver-harness.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/events');
const QUEUE = 'arn:aws:batch:us-east-1:123456789012:job-queue/TrainingJobQueue';
const DEFINITION = 'arn:aws:batch:us-east-1:123456789012:job-definition/TrainingJobDefinition:1';
const context = {} as Context;
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/** The real SQS event fixture, re-pointed at another (still URL-encoded) key. */
async function sqsEventFor(encodedKeys: string[], extraBodies: string[] = []): Promise<SQSEvent> {
  const fixture = JSON.parse(await readFile(path.join(fixtures, 'sqs-s3-object-created.json'), 'utf8')) as SQSEvent;
  const template = fixture.Records[0];
  const records: SQSRecord[] = encodedKeys.map((key, i) => {
    const body = JSON.parse(template.body);
    body.Records[0].s3.object.key = key;
    return { ...template, messageId: `msg-${i}`, body: JSON.stringify(body) };
  });
  extraBodies.forEach((body, i) => records.push({ ...template, messageId: `extra-${i}`, body }));
  return { Records: records };
}

describe('preprocess handler on the AWS adapters (s3rver + mocked Batch)', () => {
  let s3: LocalS3;
  let store: S3ObjectStore;
  const batchClient = new BatchClient({ region: 'us-east-1' });
  const batch = mockClient(batchClient);
  let submitted: { jobId: string; jobName: string; status: 'SUBMITTED' }[];
  let handler: ReturnType<typeof createHandler>;

  async function uploadDataset(folder: string, spec: unknown): Promise<void> {
    for (const [label, colour] of [
      ['cat', '#aa3311'],
      ['dog', '#1133aa'],
    ] as const) {
      for (let i = 0; i < 6; i++) {
        const png = await sharp({ create: { width: 24, height: 24, channels: 3, background: colour } })
          .png()
          .toBuffer();
        await store.put(`datasets/${folder}/${label}/${i}.png`, png, { contentType: 'image/png' });
      }
    }
    // train.json last, as the design asks uploaders to do.
    await store.put(`datasets/${folder}/train.json`, JSON.stringify(spec), { contentType: 'application/json' });
  }

  beforeAll(async () => {
    s3 = await startLocalS3();
    // s3rver has no conditional PUT; see test/contract for why this mode is used here.
    store = new S3ObjectStore({ bucket: s3.bucket, client: s3.client, conditionalWrites: 'head-then-put' });
    await uploadDataset('pets', { base: 'none', training: { epochs: 1 } });
    await uploadDataset('my pets', { model: 'mypets', base: 'none' });
    handler = createHandler({ store, jobs: new BatchJobRunner({ jobQueue: QUEUE, jobDefinition: DEFINITION, client: batchClient }), log: quiet });
  });
  afterAll(async () => {
    await s3?.stop();
  });
  beforeEach(() => {
    batch.reset();
    submitted = [];
    // A queue that remembers what was submitted, as Batch does.
    batch.on(ListJobsCommand).callsFake(() => ({ jobSummaryList: [...submitted] }));
    batch.on(SubmitJobCommand).callsFake((input: { jobName: string }) => {
      const job = { jobId: `batch-${submitted.length + 1}`, jobName: input.jobName, status: 'SUBMITTED' as const };
      submitted.push(job);
      return { jobId: job.jobId, jobName: job.jobName };
    });
  });

  it('turns the real S3-in-SQS event into prepared shards and one Batch job named by the job id', async () => {
    // Act
    const res = await handler(await sqsEventFor(['datasets/pets/train.json']), context);

    // Assess
    expect(res.batchItemFailures).toEqual([]);
    expect(batch).toHaveReceivedCommandTimes(SubmitJobCommand, 1);
    const { jobId } = (await getJsonIfExists<{ jobId: string }>(store, 'jobs/by-model/pets.json'))!;
    expect(batch).toHaveReceivedCommandWith(SubmitJobCommand, {
      jobName: jobId,
      jobQueue: QUEUE,
      jobDefinition: DEFINITION,
      containerOverrides: { environment: expect.arrayContaining([{ name: 'TL_JOB_ID', value: jobId }]) },
    });
    expect(await readJobStatus(store, jobId)).toMatchObject({ runnerJobId: 'batch-1' });
    expect((await store.list('prepared/pets/')).length).toBeGreaterThan(0);
  });

  it('submits nothing new for a redelivered message', async () => {
    // Prepare: the first delivery
    const event = await sqsEventFor(['datasets/pets/train.json']);
    await handler(event, context);
    const before = submitted.length;

    // Act: SQS delivers the same message again
    const res = await handler(event, context);

    // Assess
    expect(res.batchItemFailures).toEqual([]);
    expect(submitted.length).toBe(before);
    expect(batch).toHaveReceivedCommandTimes(SubmitJobCommand, before);
  });

  it("ignores S3's test event", async () => {
    const testEvent = await readFile(path.join(fixtures, 'sqs-s3-test-event.json'), 'utf8');

    const res = await handler(JSON.parse(testEvent) as SQSEvent, context);

    expect(res.batchItemFailures).toEqual([]);
    expect(batch).not.toHaveReceivedCommand(SubmitJobCommand);
  });

  it('decodes a URL-encoded key once and reads the object it names', async () => {
    // Act: S3 sends "datasets/my+pets/train.json" for the key "datasets/my pets/train.json"
    const res = await handler(await sqsEventFor(['datasets/my+pets/train.json']), context);

    // Assess: the spec was found and read (its model name is used); the dataset
    // name itself is not a valid name, which the job reports instead of training.
    expect(res.batchItemFailures).toEqual([]);
    const { jobId } = (await getJsonIfExists<{ jobId: string }>(store, 'jobs/by-model/mypets.json'))!;
    expect(await readJobStatus(store, jobId)).toMatchObject({ dataset: 'my pets', state: 'failed', error: { code: 'INVALID_DATASET_NAME' } });
    expect(batch).not.toHaveReceivedCommand(SubmitJobCommand);
  });

  it('reports only the bad record of a batch as failed', async () => {
    // Prepare: a good record, a body that is not an S3 event, and the test event
    const testEventBody = JSON.parse(await readFile(path.join(fixtures, 'sqs-s3-test-event.json'), 'utf8')).Records[0].body as string;
    const event = await sqsEventFor(['datasets/pets/train.json'], ['{"not":"an s3 event"}', testEventBody]);

    // Act
    const res = await handler(event, context);

    // Assess
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: 'extra-0' }]);
  });
});
