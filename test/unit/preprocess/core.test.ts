import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeShard } from '../../../shared/data/shards.js';
import { jobStatusKey, readJobStatus } from '../../../shared/jobs/status.js';
import type { ObjectStore } from '../../../shared/ports/object-store.js';
import { getJson } from '../../../shared/ports/object-store.js';
import { DatasetReportSchema, type DatasetReport } from '../../../shared/schemas/report.js';
import { TrainJobEnvSchema } from '../../../shared/schemas/env.js';
import { modelJobPointerKey, PreprocessBusyError, preprocessDataset, type PreprocessDeps } from '../../../functions/preprocess/core.js';
import { BLUE, FakeJobRunner, GREEN, makeTmpStore, RED, solidImage, truncatedJpeg, type TmpStore } from '../data/helpers.js';

const SPEC = { base: 'none', training: { epochs: 2 } };
const event = (dataset: string) => ({ bucket: 'local', key: `datasets/${dataset}/train.json` });

let tmp: TmpStore;
let store: ObjectStore;
let jobs: FakeJobRunner;
let deps: PreprocessDeps;

beforeEach(async () => {
  tmp = await makeTmpStore();
  store = tmp.store;
  jobs = new FakeJobRunner();
  deps = { store, jobs };
});
afterEach(async () => tmp.cleanup());

/** Uploads `<label>/<i>.<ext>` images, then train.json last, like `tl upload`. */
async function uploadFolders(dataset: string, counts: Record<string, number>, spec: unknown = SPEC, extra: Record<string, Buffer | string> = {}) {
  const colours = [RED, GREEN, BLUE];
  const formats = ['png', 'jpeg', 'webp'] as const;
  let c = 0;
  for (const [label, n] of Object.entries(counts)) {
    for (let i = 0; i < n; i++) {
      const format = formats[i % 3];
      await store.put(
        `datasets/${dataset}/${label}/${i}.${format === 'jpeg' ? 'jpg' : format}`,
        await solidImage(format, colours[c % 3], { width: 20 + i, height: 12 }),
      );
    }
    c++;
  }
  for (const [key, body] of Object.entries(extra)) await store.put(`datasets/${dataset}/${key}`, body);
  await store.put(`datasets/${dataset}/train.json`, typeof spec === 'string' ? spec : JSON.stringify(spec));
}

async function expectFailed(dataset: string, code: string, message: RegExp | string) {
  const result = await preprocessDataset(event(dataset), deps);
  expect(result).toMatchObject({ outcome: 'failed', error: { code } });
  const status = await readJobStatus(store, (result as { jobId: string }).jobId);
  expect(status?.state).toBe('failed');
  expect(status?.error?.code).toBe(code);
  expect(status?.error?.message).toMatch(message);
  expect(jobs.submitted).toHaveLength(0);
  return { result, status: status! };
}

describe('preprocessDataset', () => {
  it('prepares a folder dataset: shards, a report listing skipped files, a job status and one submitted job', async () => {
    // Prepare
    await uploadFolders('pets', { cat: 12, dog: 10, bird: 3 }, SPEC, {
      'cat/broken.jpg': await truncatedJpeg(),
      'dog/notes.jpg': 'this is a text file named like a picture',
      'dog/anim.gif': await solidImage('gif', RED),
      'stray.png': await solidImage('png', RED),
    });

    // Act
    const result = await preprocessDataset(event('pets'), deps);

    // Assess: the outcome and the job
    expect(result).toMatchObject({ outcome: 'submitted', runnerJobId: 'fake-1', reusedReport: false });
    if (result.outcome !== 'submitted') throw new Error('unreachable');
    expect(result.jobId).toMatch(/^train-pets-[0-9a-f]{16}$/);
    expect(jobs.submitted).toHaveLength(1);
    const env = TrainJobEnvSchema.parse(jobs.submitted[0].env);
    expect(env).toEqual({ TL_JOB_ID: result.jobId, TL_PREPARED_PREFIX: result.preparedPrefix });
    expect(result.preparedPrefix).toMatch(/^prepared\/pets\/[0-9a-f]{64}$/);

    const status = await readJobStatus(store, result.jobId);
    expect(status).toMatchObject({ jobId: result.jobId, model: 'pets', dataset: 'pets', state: 'submitted', runnerJobId: 'fake-1' });
    expect(await getJson(store, modelJobPointerKey('pets'))).toEqual({ jobId: result.jobId });

    // Assess: the report
    const report: DatasetReport = DatasetReportSchema.parse(await getJson(store, `${result.preparedPrefix}/report.json`));
    expect(report).toMatchObject({ dataset: 'pets', layout: 'folders', inputShape: [32, 32, 3], records: { total: 29, used: 25, skipped: 4 } });
    expect(report.tasks).toEqual({ class: { type: 'classification', labelled: 25, classes: { bird: 3, cat: 12, dog: 10 } } });
    expect(Object.fromEntries(report.skipped.map((s) => [s.key, s.reason]))).toEqual({
      'cat/broken.jpg': expect.stringMatching(/^corrupt image data/),
      'dog/notes.jpg': 'not a JPEG, PNG or WebP image',
      'dog/anim.gif': 'not a JPEG, PNG or WebP image',
      'stray.png': 'at the top level of the dataset, not in a <label>/ folder',
    });
    expect(report.splits.train + report.splits.validation + report.splits.test).toBe(25);

    // Assess: the shards hold every usable record once, with its pixels and labels
    const seen = new Map<string, string>();
    for (const ref of report.shards) {
      const shard = decodeShard(await store.get(ref.key));
      expect(ref.key).toMatch(new RegExp(`^${result.preparedPrefix}/shards/${ref.split}-\\d{5}\\.bin$`));
      expect(shard.split).toBe(ref.split);
      expect(shard.shape).toEqual([32, 32, 3]);
      expect(shard.records).toHaveLength(ref.count);
      expect(shard.data.length).toBe(ref.count * 32 * 32 * 3);
      shard.records.forEach((r, i) => {
        seen.set(r.key, String(r.labels.class));
        // Solid images: the first pixel tells the class's colour.
        const px = Array.from(shard.data.subarray(i * 3072, i * 3072 + 3));
        const colour = { cat: RED, dog: GREEN, bird: BLUE }[r.labels.class as 'cat' | 'dog' | 'bird'];
        expect(Math.abs(px[0] - colour.r) + Math.abs(px[1] - colour.g) + Math.abs(px[2] - colour.b)).toBeLessThan(20);
      });
    }
    expect(seen.size).toBe(25);
    // Even the 3-image class has a training record.
    const trainKeys = new Set(
      (await Promise.all(report.shards.filter((s) => s.split === 'train').map(async (s) => decodeShard(await store.get(s.key)).records)))
        .flat()
        .map((r) => r.key),
    );
    expect([...trainKeys].some((k) => k.startsWith('bird/'))).toBe(true);
  });

  it('cuts splits into shards of the configured size', async () => {
    await uploadFolders('pets', { cat: 12, dog: 12 });

    const result = await preprocessDataset(event('pets'), { ...deps, options: { shardSize: 4, concurrency: 2 } });

    if (result.outcome !== 'submitted') throw new Error(JSON.stringify(result));
    const report = DatasetReportSchema.parse(await getJson(store, `${result.preparedPrefix}/report.json`));
    expect(report.shards.every((s) => s.count <= 4)).toBe(true);
    expect(report.shards.filter((s) => s.split === 'train').length).toBe(Math.ceil(report.splits.train / 4));
  });

  it('ignores keys other than datasets/<dataset>/train.json', async () => {
    for (const key of ['datasets/pets/cat/1.jpg', 'datasets/pets/sub/train.json', 'models/pets/train.json', 'datasets/train.json']) {
      expect(await preprocessDataset({ bucket: 'local', key }, deps)).toMatchObject({ outcome: 'ignored' });
    }
    expect(await store.list('jobs/')).toEqual([]);
  });

  describe('idempotency', () => {
    it('starts one job when the same event is delivered twice', async () => {
      await uploadFolders('pets', { cat: 4, dog: 4 });

      const first = await preprocessDataset(event('pets'), deps);
      const second = await preprocessDataset(event('pets'), deps);

      expect(first.outcome).toBe('submitted');
      expect(second).toEqual({ outcome: 'duplicate', jobId: (first as { jobId: string }).jobId, state: 'submitted' });
      expect(jobs.submitted).toHaveLength(1);
    });

    it('starts one job when the same content is uploaded again', async () => {
      await uploadFolders('pets', { cat: 4, dog: 4 });
      await preprocessDataset(event('pets'), deps);

      await uploadFolders('pets', { cat: 4, dog: 4 });
      const again = await preprocessDataset(event('pets'), deps);

      expect(again.outcome).toBe('duplicate');
      expect(jobs.submitted).toHaveLength(1);
    });

    it('starts a new job when the content changes', async () => {
      await uploadFolders('pets', { cat: 4, dog: 4 });
      const first = await preprocessDataset(event('pets'), deps);

      await store.put('datasets/pets/dog/extra.png', await solidImage('png', GREEN, { width: 9, height: 9 }));
      const second = await preprocessDataset(event('pets'), deps);

      expect(second.outcome).toBe('submitted');
      expect((second as { jobId: string }).jobId).not.toBe((first as { jobId: string }).jobId);
      expect(jobs.submitted).toHaveLength(2);
      expect(await getJson(store, modelJobPointerKey('pets'))).toEqual({ jobId: (second as { jobId: string }).jobId });
    });

    it('resumes after a runner failure and reuses the prepared data', async () => {
      // Prepare: the first attempt prepares everything, then the runner fails.
      await uploadFolders('pets', { cat: 4, dog: 4 });
      jobs.failNext = new Error('Batch is throttling');
      await expect(preprocessDataset(event('pets'), deps)).rejects.toThrow('Batch is throttling');
      const shardsBefore = await store.list('prepared/');

      // Act: the queue delivers the message again.
      const retry = await preprocessDataset(event('pets'), deps);

      // Assess
      expect(retry).toMatchObject({ outcome: 'submitted', reusedReport: true });
      expect(jobs.submitted).toHaveLength(1);
      expect((await store.list('prepared/')).map((o) => [o.key, o.etag])).toEqual(shardsBefore.map((o) => [o.key, o.etag]));
    });

    it('starts one job when two deliveries of the same event run at once', async () => {
      // Prepare
      await uploadFolders('pets', { cat: 6, dog: 6 });

      // Act: S3 can notify twice; both copies arrive together.
      const [a, b] = await Promise.allSettled([preprocessDataset(event('pets'), deps), preprocessDataset(event('pets'), deps)]);
      const redelivered = await preprocessDataset(event('pets'), deps);

      // Assess: one did the work, the other backed off to be redelivered, then was a duplicate.
      const outcomes = [a, b].map((r) => (r.status === 'fulfilled' ? r.value.outcome : (r.reason as Error).name));
      expect(outcomes.sort()).toEqual(['PreprocessBusyError', 'submitted']);
      expect(redelivered.outcome).toBe('duplicate');
      expect(jobs.submitted).toHaveLength(1);
      expect((await store.list('jobs/')).map((o) => o.key).filter((k) => k.includes('claim'))).toEqual([]);
    });

    it('takes over from a delivery that died before submitting, once its claim is stale', async () => {
      // Prepare: a first delivery that died mid-way left its claim behind.
      await uploadFolders('pets', { cat: 4, dog: 4 });
      const stuck: ObjectStore = Object.create(store, {
        // Reading images never finishes, as in a function that timed out.
        get: { value: async (key: string) => (key.endsWith('.png') ? new Promise<Buffer>(() => undefined) : store.get(key)) },
      });
      void preprocessDataset(event('pets'), { store: stuck, jobs }).catch(() => undefined);
      await expect.poll(() => store.list('jobs/').then((l) => l.some((o) => o.key.endsWith('preprocess-claim.json')))).toBe(true);

      // Act & Assess: a fresh claim makes the redelivery back off; a stale one is taken over.
      await expect(preprocessDataset(event('pets'), deps)).rejects.toBeInstanceOf(PreprocessBusyError);
      const result = await preprocessDataset(event('pets'), { ...deps, options: { claimStaleAfterMs: 0 } });
      expect(result.outcome).toBe('submitted');
      expect(jobs.submitted).toHaveLength(1);
    });

    it('does not retry a dataset that already failed with the same content', async () => {
      await uploadFolders('pets', { cat: 4, dog: 1 });
      await expectFailed('pets', 'TOO_FEW_EXAMPLES', /"dog" has 1/);

      const again = await preprocessDataset(event('pets'), deps);

      expect(again).toMatchObject({ outcome: 'duplicate', state: 'failed' });
    });

    it.each([
      ['ended by its runner', 'failed' as const, 'JOB_CRASHED'],
      ['unknown to its runner', null, 'JOB_ORPHANED'],
    ])('runs a job again that is recorded as running but %s (it died unable to record its end)', async (_why, runnerState, code) => {
      // Prepare: the job started, then its process died while the disk was full.
      await uploadFolders('pets', { cat: 4, dog: 4 });
      const first = await preprocessDataset(event('pets'), deps);
      const jobId = (first as { jobId: string }).jobId;
      const { updateJobStatus } = await import('../../../shared/jobs/status.js');
      await updateJobStatus(store, jobId, { state: 'running', phase: 'training' });
      jobs.states.set('fake-1', runnerState);
      const log = { info: () => {}, warn: (m: string, extra?: Record<string, unknown>) => warnings.push({ m, extra }), error: () => {} };
      const warnings: Array<{ m: string; extra?: Record<string, unknown> }> = [];
      // Act
      const again = await preprocessDataset(event('pets'), { ...deps, log });
      // Assess: reconciled (the old run's end recorded with a code), then submitted again.
      expect(again).toMatchObject({ outcome: 'submitted', jobId });
      expect(jobs.submitted).toHaveLength(2);
      expect(warnings[0]?.extra).toMatchObject({ jobId, error: { code } });
      expect(await readJobStatus(store, jobId)).toMatchObject({ state: 'submitted', runnerJobId: 'fake-2' });
    });

    it('does not run a job again while its runner says it is still running', async () => {
      await uploadFolders('pets', { cat: 4, dog: 4 });
      await preprocessDataset(event('pets'), deps);
      jobs.states.set('fake-1', 'running');
      expect(await preprocessDataset(event('pets'), deps)).toMatchObject({ outcome: 'duplicate' });
      expect(jobs.submitted).toHaveLength(1);
    });

    it('runs a job again when it failed after submission (a crash, a Spot reclaim) and train.json is uploaded again', async () => {
      // Prepare: a submitted job that then failed at run time.
      await uploadFolders('pets', { cat: 4, dog: 4 });
      const first = await preprocessDataset(event('pets'), deps);
      const jobId = (first as { jobId: string }).jobId;
      const { updateJobStatus } = await import('../../../shared/jobs/status.js');
      await updateJobStatus(store, jobId, { state: 'failed', error: { code: 'SPOT_RECLAIMED', message: 'instance reclaimed' } });
      // Act
      const again = await preprocessDataset(event('pets'), deps);
      // Assess
      expect(again).toMatchObject({ outcome: 'submitted', jobId, reusedReport: true });
      expect(jobs.submitted).toHaveLength(2);
      const status = await readJobStatus(store, jobId);
      expect(status).toMatchObject({ state: 'submitted', progress: 0 });
      expect(status?.error).toBeUndefined();
    });
  });

  describe('user errors end the job as failed, without a submit', () => {
    it('INVALID_SPEC for train.json that is not JSON, reported under the dataset name', async () => {
      await uploadFolders('pets', { cat: 3, dog: 3 }, '{"base": "none",');

      const { status } = await expectFailed('pets', 'INVALID_SPEC', /^train\.json is not valid JSON/);

      expect(status.model).toBe('pets');
      expect(await getJson(store, modelJobPointerKey('pets'))).toEqual({ jobId: status.jobId });
    });

    it('INVALID_SPEC naming the field of a schema problem', async () => {
      await uploadFolders('pets', { cat: 3, dog: 3 }, { model: 'pet-model', base: 'none', training: { epochs: 0 }, colour: 'red' });

      const { status } = await expectFailed('pets', 'INVALID_SPEC', /field "training\.epochs"/);

      expect(status.error?.message).toMatch(/colour/);
      expect(status.model).toBe('pets');
    });

    it('INVALID_SPEC for a spec with no tasks, or with only auxiliary tasks', async () => {
      await uploadFolders('pets', { cat: 3, dog: 3 }, { base: 'none', tasks: [] });
      await expectFailed('pets', 'INVALID_SPEC', /field "tasks": a spec needs at least one task/);

      await uploadFolders('pets2', { cat: 3, dog: 3 }, { base: 'none', tasks: [{ name: 'class', auxiliary: true }] });
      await expectFailed('pets2', 'INVALID_SPEC', /every task is auxiliary/);
    });

    it('INVALID_SPEC for gradnorm on an architecture whose tasks share no layer', async () => {
      const tasks = [{ name: 'class' }, { name: 'other' }];
      await uploadFolders('soft', { cat: 3, dog: 3 }, { base: 'none', tasks, sharing: { method: 'soft' }, lossWeighting: { method: 'gradnorm' } });
      await expectFailed('soft', 'INVALID_SPEC', /field "lossWeighting": gradnorm .* soft sharing shares none/);

      await uploadFolders('flat', { cat: 3, dog: 3 }, { base: 'none', tasks, sharing: { method: 'hard', trunk: [] }, lossWeighting: { method: 'gradnorm' } });
      await expectFailed('flat', 'INVALID_SPEC', /a hard trunk of no layers shares none/);
    });

    it('INVALID_SPEC for a prototype dataset above 20 examples per class, naming the class', async () => {
      await uploadFolders('few', { cat: 21, dog: 2 }, { base: 'none', mode: 'prototype' });
      await expectFailed('few', 'INVALID_SPEC', /1 to 20 examples per class; "cat" has 21/);
    });

    it('UNKNOWN_BASE_MODEL', async () => {
      await uploadFolders('pets', { cat: 3, dog: 3 }, { base: 'resnet_9000' });

      await expectFailed('pets', 'UNKNOWN_BASE_MODEL', /unknown base model "resnet_9000"/);
    });

    it('EMPTY_DATASET when only train.json was uploaded, or no file is a record', async () => {
      await store.put('datasets/empty/train.json', JSON.stringify(SPEC));
      await expectFailed('empty', 'EMPTY_DATASET', 'dataset "empty" is empty: it has no files besides train.json');

      await store.put('datasets/flat/a.png', await solidImage('png', RED));
      await store.put('datasets/flat/train.json', JSON.stringify(SPEC));
      await expectFailed('flat', 'EMPTY_DATASET', /none of its 1 files is a record \("a\.png": at the top level/);
    });

    it('NO_USABLE_IMAGES when no file decodes', async () => {
      await uploadFolders('junk', {}, SPEC, { 'cat/a.jpg': 'text', 'dog/b.jpg': await truncatedJpeg() });

      await expectFailed('junk', 'NO_USABLE_IMAGES', /"cat\/a\.jpg": not a JPEG, PNG or WebP image; "dog\/b\.jpg": corrupt image data/);
    });

    it('TOO_FEW_EXAMPLES naming the label and its usable count', async () => {
      // Two dog files, but one is corrupt: one usable image.
      await uploadFolders('pets', { cat: 5, dog: 1 }, SPEC, { 'dog/bad.jpg': await truncatedJpeg() });

      await expectFailed('pets', 'TOO_FEW_EXAMPLES', 'label with fewer than 2 usable images: "dog" has 1. Add images or remove that label');
    });

    it('TOO_FEW_CLASSES for a single label folder', async () => {
      await uploadFolders('cats', { cat: 5 });

      await expectFailed('cats', 'TOO_FEW_CLASSES', /only one class \("cat"\)/);
    });

    it('INVALID_MANIFEST naming the line and field', async () => {
      await store.put('datasets/zoo/a.png', await solidImage('png', RED));
      await store.put(
        'datasets/zoo/manifest.jsonl',
        `${JSON.stringify({ source: 'a.png', labels: { species: 'cat' } })}\n${JSON.stringify({ source: 'b.png', labels: { colour: 'red' } })}\n`,
      );
      await store.put('datasets/zoo/train.json', JSON.stringify({ base: 'none', tasks: [{ name: 'species' }] }));

      await expectFailed('zoo', 'INVALID_MANIFEST', 'manifest.jsonl line 2, field "labels.colour": unknown task "colour"; train.json declares "species"');
    });

    it("INVALID_DATASET_NAME when the folder name cannot be a name, reported under the spec's model", async () => {
      await uploadFolders('my set', { cat: 3, dog: 3 }, { model: 'myset', base: 'none' });

      const { status } = await expectFailed('my set', 'INVALID_DATASET_NAME', /dataset name "my set" is invalid/);

      expect(status.model).toBe('myset');
    });

    it('leaves published models alone', async () => {
      await store.put('models/pets/aliases/latest.json', '{"version":"v20250101000000-abcdef"}');
      const before = await store.list('models/');
      await uploadFolders('pets', { cat: 1, dog: 1 });

      await expectFailed('pets', 'TOO_FEW_EXAMPLES', /"cat" has 1, "dog" has 1/);

      expect(await store.list('models/')).toEqual(before);
    });
  });

  it('fails transiently (throws, so the queue retries) when the store fails, without marking the job failed', async () => {
    await uploadFolders('pets', { cat: 3, dog: 3 });
    let fail = true;
    const flaky: ObjectStore = Object.create(store, {
      get: { value: async (key: string) => (fail && key.endsWith('.png') ? Promise.reject(new Error('SlowDown')) : store.get(key)) },
    });

    await expect(preprocessDataset(event('pets'), { store: flaky, jobs })).rejects.toThrow('SlowDown');
    const [statusObj] = await store.list('jobs/train-');
    expect((await getJson<{ state: string }>(store, statusObj.key)).state).toBe('submitted');

    fail = false;
    expect((await preprocessDataset(event('pets'), { store: flaky, jobs })).outcome).toBe('submitted');
    expect(jobs.submitted).toHaveLength(1);
    expect(statusObj.key).toBe(jobStatusKey(jobs.submitted[0].jobId));
  });

  it('prepares a multi-task manifest dataset with partial labels', async () => {
    // Prepare
    const lines: unknown[] = [];
    for (let i = 0; i < 12; i++) {
      const name = `img/${i}.png`;
      await store.put(`datasets/zoo/${name}`, await solidImage('png', i % 2 ? RED : BLUE));
      lines.push({
        source: name,
        labels: { species: i % 2 ? 'cat' : 'dog', size: i % 3 === 0 ? null : i % 4 ? 'big' : 'small', box: i < 8 ? [i / 10, 0.1, 0.5, 0.5] : undefined },
      });
    }
    await store.put('datasets/zoo/manifest.jsonl', lines.map((l) => JSON.stringify(l)).join('\n'));
    await store.put(
      'datasets/zoo/train.json',
      JSON.stringify({
        model: 'zoo-model',
        base: 'none',
        tasks: [{ name: 'species' }, { name: 'size' }, { name: 'box', type: 'regression', auxiliary: true }],
      }),
    );

    // Act
    const result = await preprocessDataset(event('zoo'), deps);

    // Assess
    if (result.outcome !== 'submitted') throw new Error(JSON.stringify(result));
    expect(result.jobId).toMatch(/^train-zoo-model-/);
    const report = DatasetReportSchema.parse(await getJson(store, `${result.preparedPrefix}/report.json`));
    expect(report.layout).toBe('manifest');
    expect(report.tasks).toEqual({
      species: { type: 'classification', labelled: 12, classes: { cat: 6, dog: 6 } },
      size: { type: 'classification', labelled: 8, classes: { big: 6, small: 2 } },
      box: { type: 'regression', labelled: 8, size: 4 },
    });
    expect(await getJson(store, modelJobPointerKey('zoo-model'))).toEqual({ jobId: result.jobId });
  });

  it('uses the input shape of a pretrained base (mobilenet_v2)', async () => {
    await uploadFolders('pets', { cat: 2, dog: 2 }, { base: 'mobilenet_v2' });

    const result = await preprocessDataset(event('pets'), deps);

    if (result.outcome !== 'submitted') throw new Error(JSON.stringify(result));
    const report = DatasetReportSchema.parse(await getJson(store, `${result.preparedPrefix}/report.json`));
    expect(report.inputShape).toEqual([224, 224, 3]);
    const shard = decodeShard(await store.get(report.shards[0].key));
    expect(shard.shape).toEqual([224, 224, 3]);
    expect(shard.data.length).toBe(report.shards[0].count * 224 * 224 * 3);
  });
});

describe('preprocessDataset on vector (tabular) data', () => {
  const VECTOR_SPEC = { input: { type: 'vector' }, base: 'none', tasks: [{ name: 'kind' }] };

  /** Uploads manifest.jsonl (lines given as JSON values or raw strings), then train.json. */
  async function uploadVectors(dataset: string, lines: unknown[], spec: unknown = VECTOR_SPEC, extra: Record<string, string> = {}) {
    for (const [key, body] of Object.entries(extra)) await store.put(`datasets/${dataset}/${key}`, body);
    await store.put(`datasets/${dataset}/manifest.jsonl`, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n'));
    await store.put(`datasets/${dataset}/train.json`, JSON.stringify(spec));
  }
  const row = (i: number, features: unknown = [i, i * 100, i % 2 ? null : 1]) => ({ features, labels: { kind: i % 2 ? 'odd' : 'even' } });

  it('writes float32 shards of the raw features, null as NaN, and submits the job', async () => {
    // Prepare: 20 records, a line without labels, and a stray file
    const lines = [...Array.from({ length: 20 }, (_, i) => row(i)), { features: [1, 2, 3], labels: {} }];
    await uploadVectors('table', lines, VECTOR_SPEC, { 'notes.txt': 'hello' });

    // Act
    const result = await preprocessDataset(event('table'), deps);

    // Assess
    if (result.outcome !== 'submitted') throw new Error(JSON.stringify(result));
    const report = DatasetReportSchema.parse(await getJson(store, `${result.preparedPrefix}/report.json`));
    expect(report.inputShape).toEqual([3]);
    expect(report.records).toEqual({ total: 22, used: 20, skipped: 2 });
    expect(report.skipped.map((s) => s.key)).toEqual(['manifest.jsonl#21', 'notes.txt']);
    expect(report.tasks.kind).toEqual({ type: 'classification', labelled: 20, classes: { even: 10, odd: 10 } });
    expect(report.splits.train + report.splits.validation + report.splits.test).toBe(20);
    const shards = await Promise.all(report.shards.map(async (s) => decodeShard(await store.get(s.key))));
    const all = shards.flatMap((s) => s.records.map((r, j) => ({ key: r.key, x: Array.from(s.data.subarray(j * 3, j * 3 + 3)) })));
    expect(shards.every((s) => s.dtype === 'float32' && s.shape[0] === 3)).toBe(true);
    const third = all.find((r) => r.key === 'manifest.jsonl#4')!; // line 4 is record i = 3: odd, so its last feature is null
    expect(third.x.slice(0, 2)).toEqual([3, 300]);
    expect(third.x[2]).toBeNaN();
    expect(jobs.submitted).toHaveLength(1);
  });

  it('INVALID_MANIFEST naming the line for a wrong length, a non-number, a ragged row, or a source', async () => {
    const cases: Array<[string, unknown[], unknown, RegExp]> = [
      ['a row shorter than the first', [row(0), row(1), row(2, [1, 2])], VECTOR_SPEC, /line 3, field "features": 2 values, but line 1 has 3/],
      [
        'a row of another length than input.size',
        [row(0), row(1)],
        { ...VECTOR_SPEC, input: { type: 'vector', size: 4 } },
        /line 1, field "features": 3 values, but train\.json declares input\.size 4/,
      ],
      [
        'a string among the features',
        [row(0), row(1, [1, 'abc', 3])],
        VECTOR_SPEC,
        /line 2, field "features\.1": expected a number or null, got the string "abc"/,
      ],
      ['a nested (ragged) row', [row(0), row(1, [[1, 2], 3, 4])], VECTOR_SPEC, /line 2, field "features\.0": a list inside the features/],
      ['no features', [row(0), { labels: { kind: 'odd' } }], VECTOR_SPEC, /line 2, field "features": expected a non-empty list of numbers/],
      ['a source line', [row(0), { source: 'a.png', labels: { kind: 'odd' } }], VECTOR_SPEC, /line 2, field "source": a vector dataset/],
      [
        'a number too large for float32',
        [row(0), '{"features": [1, 1e39, 2], "labels": {"kind": "odd"}}'],
        VECTOR_SPEC,
        /line 2, field "features\.1": 1e\+39 does not fit/,
      ],
    ];
    for (const [name, lines, spec, message] of cases) {
      const dataset = `t-${cases.findIndex((c) => c[0] === name)}`;
      await uploadVectors(dataset, lines, spec);
      await expectFailed(dataset, 'INVALID_MANIFEST', message);
    }
  });

  it('INVALID_SPEC for a vector dataset with a pretrained base; INVALID_DATASET without a manifest', async () => {
    await uploadVectors('based', [row(0), row(1)], { ...VECTOR_SPEC, base: 'mobilenet_v2' });
    await expectFailed('based', 'INVALID_SPEC', /vector inputs need base "none", not "mobilenet_v2"/);

    await store.put('datasets/bare/a.csv', '1,2,3');
    await store.put('datasets/bare/train.json', JSON.stringify(VECTOR_SPEC));
    await expectFailed('bare', 'INVALID_DATASET', /a vector dataset needs manifest\.jsonl/);
  });
});
