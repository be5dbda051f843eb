import { readFileSync } from 'node:fs';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createHandler, handler as lambdaHandler } from '../../../functions/preprocess/handler.js';
import { readJobStatus } from '../../../shared/jobs/status.js';
import { FakeJobRunner, GREEN, makeTmpStore, RED, solidImage, type TmpStore } from '../data/helpers.js';

const fixture = (name: string): SQSEvent => JSON.parse(readFileSync(new URL(`../../fixtures/events/${name}`, import.meta.url), 'utf8'));

/** The fixture's S3-in-SQS record with another (already URL-encoded) key and message id. */
function recordFor(encodedKey: string, messageId: string): SQSRecord {
  const [record] = fixture('sqs-s3-object-created.json').Records;
  const body = JSON.parse(record.body);
  body.Records[0].s3.object.key = encodedKey;
  return { ...record, messageId, body: JSON.stringify(body) };
}

const context = {} as Context;
let tmp: TmpStore;
let jobs: FakeJobRunner;

beforeEach(async () => {
  tmp = await makeTmpStore();
  jobs = new FakeJobRunner();
});
afterEach(async () => tmp.cleanup());

async function uploadDataset(dataset: string, spec: unknown = { base: 'none' }) {
  for (let i = 0; i < 3; i++) {
    await tmp.store.put(`datasets/${dataset}/red/${i}.png`, await solidImage('png', RED, { width: 8 + i, height: 8 }));
    await tmp.store.put(`datasets/${dataset}/green/${i}.png`, await solidImage('png', GREEN, { width: 8 + i, height: 8 }));
  }
  await tmp.store.put(`datasets/${dataset}/train.json`, JSON.stringify(spec));
}

describe('preprocess handler', () => {
  it('prepares the dataset named in a real S3-in-SQS event and reports no failures', async () => {
    // Prepare: the fixture's key is datasets/pets/train.json.
    await uploadDataset('pets');
    const handler = createHandler({ store: tmp.store, jobs });

    // Act
    const response = await handler(fixture('sqs-s3-object-created.json'), context);

    // Assess
    expect(response).toEqual({ batchItemFailures: [] });
    expect(jobs.submitted).toHaveLength(1);
    expect(jobs.submitted[0].env.TL_PREPARED_PREFIX).toMatch(/^prepared\/pets\//);
  });

  it("does nothing for S3's test event", async () => {
    const handler = createHandler({ store: tmp.store, jobs });

    const response = await handler(fixture('sqs-s3-test-event.json'), context);

    expect(response).toEqual({ batchItemFailures: [] });
    expect(await tmp.store.list('')).toEqual([]);
  });

  it('decodes URL-encoded keys before using them', async () => {
    // Prepare: S3 sends "datasets/my set/train.json" as "datasets/my+set/train.json".
    await uploadDataset('my set', { model: 'myset', base: 'none' });
    const outcomes: string[] = [];
    const handler = createHandler({ store: tmp.store, jobs }, (r) => outcomes.push(r.outcome === 'failed' ? `failed ${r.error.code}` : r.outcome));

    // Act
    const response = await handler({ Records: [recordFor('datasets/my+set/train.json', 'm-1')] }, context);

    // Assess: the dataset was found under its decoded name, and refused for it.
    expect(response).toEqual({ batchItemFailures: [] });
    // Each dataset's outcome reaches the hook the Lambda entry turns into metrics.
    expect(outcomes).toEqual(['failed INVALID_DATASET_NAME']);
    const pointer = JSON.parse((await tmp.store.get('jobs/by-model/myset.json')).toString());
    const status = await readJobStatus(tmp.store, pointer.jobId);
    expect(status).toMatchObject({ dataset: 'my set', state: 'failed', error: { code: 'INVALID_DATASET_NAME' } });
  });

  it('decodes percent-encoded keys of a valid dataset', async () => {
    await uploadDataset('pets');
    const handler = createHandler({ store: tmp.store, jobs });

    const response = await handler({ Records: [recordFor('datasets%2Fpets%2Ftrain.json', 'm-1')] }, context);

    expect(response).toEqual({ batchItemFailures: [] });
    expect(jobs.submitted).toHaveLength(1);
  });

  it('ignores objects other than train.json', async () => {
    await uploadDataset('pets');
    const handler = createHandler({ store: tmp.store, jobs });

    const response = await handler({ Records: [recordFor('datasets/pets/red/0.png', 'm-1'), recordFor('datasets/pets/train.json.bak', 'm-2')] }, context);

    expect(response).toEqual({ batchItemFailures: [] });
    expect(await tmp.store.list('jobs/')).toEqual([]);
  });

  it('reports only the bad record of a batch as failed', async () => {
    // Prepare: two good datasets around a message whose body is not an S3 event.
    await uploadDataset('pets');
    await uploadDataset('birds');
    const bad = { ...recordFor('datasets/x/train.json', 'bad-1'), body: '{"Records": "not an s3 event"' };
    const event: SQSEvent = {
      Records: [
        recordFor('datasets/pets/train.json', 'good-1'),
        bad,
        fixture('sqs-s3-test-event.json').Records[0],
        recordFor('datasets/birds/train.json', 'good-2'),
      ],
    };
    const handler = createHandler({ store: tmp.store, jobs });

    // Act
    const response = await handler(event, context);

    // Assess
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'bad-1' }] });
    expect(jobs.submitted.map((j) => j.env.TL_PREPARED_PREFIX.split('/')[1]).sort()).toEqual(['birds', 'pets']);
  });

  it('reports a record whose processing fails transiently, so SQS redelivers it alone', async () => {
    await uploadDataset('pets');
    await uploadDataset('birds');
    jobs.failNext = new Error('runner unavailable');
    const handler = createHandler({ store: tmp.store, jobs });

    const response = await handler({ Records: [recordFor('datasets/pets/train.json', 'first'), recordFor('datasets/birds/train.json', 'second')] }, context);

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'first' }] });
    expect(jobs.submitted).toHaveLength(1);
  });

  it('builds its adapters from the environment at the first call, and retries after a bad start', async () => {
    // Prepare: importing the module read nothing; the first call finds no bucket configured.
    vi.stubEnv('STORE_KIND', 'local');
    vi.stubEnv('JOB_RUNNER', 'local');
    vi.stubEnv('BUCKET_DIR', '');
    try {
      await expect(lambdaHandler(fixture('sqs-s3-test-event.json'), context)).rejects.toThrow(/BUCKET_DIR/);

      // Act
      vi.stubEnv('BUCKET_DIR', tmp.root);
      const response = await lambdaHandler(fixture('sqs-s3-test-event.json'), context);

      // Assess
      expect(response).toEqual({ batchItemFailures: [] });
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
