import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateShapesDataset, generateShapesImages } from '../../shared/local/demo-data.js';
import { readReport } from '../../shared/data/shards.js';
import { readTree, startTestPlatform, type TestPlatform } from '../helpers/platform.js';

/** Accuracy the demo task must reach on held-out images (3 classes; chance is 0.33). */
const ACCURACY_THRESHOLD = 0.8;

describe('embedded platform end to end (HTTP)', () => {
  let t: TestPlatform;
  let work: string;

  const logged: Array<{ message: string; attributes?: Record<string, unknown> }> = [];

  beforeAll(async () => {
    t = await startTestPlatform({ log: (message, attributes) => void logged.push({ message, attributes }) });
    work = await mkdtemp(path.join(tmpdir(), 'tl-e2e-data-'));
  });
  afterAll(async () => {
    await t?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('uploads a generated dataset with corrupt files, trains, and predicts held-out images', async () => {
    // Prepare: 3 classes, 30 images each, plus corrupt files the report must list.
    const dir = path.join(work, 'shapes');
    const dataset = await generateShapesDataset(dir, { perClass: 30, seed: 1, corrupt: 2 });
    const files = (await readTree(dir)).filter((f) => f.path !== 'train.json');
    files.push({ path: 'train.json', data: Buffer.from(JSON.stringify({ model: 'shapes' })) });

    // Act
    await t.upload('shapes', files);
    const job = await t.waitForJob('shapes');

    // Assess: the job succeeded and published a version.
    expect(job.state, `${job.error?.message}\n${t.jobOutput.slice(-20).join('\n')}`).toBe('succeeded');
    expect(job.version).toMatch(/^v\d{14}-/);
    const report = await readReport(t.platform.defaultTenant.store, `prepared/shapes/${job.datasetHash}`);
    expect(report.records.skipped).toBeGreaterThanOrEqual(2);
    const corrupt = dataset.corrupt;
    expect(corrupt).toHaveLength(2);
    for (const key of corrupt) expect(report.skipped.map((s) => s.key)).toContain(key);

    // The served version was loaded as soon as the job ended, before anyone called it.
    await expect
      .poll(() => logged.find((l) => l.message === 'model warmed' && l.attributes?.model === 'shapes')?.attributes?.version, { timeout: 30_000 })
      .toBe(job.version);

    // Held-out images, drawn with another seed.
    const heldOut = await generateShapesImages({ perClass: 10, seed: 4242 });
    const res = await t.call('POST', '/models/shapes/predict', { instances: heldOut.map((h) => ({ image: h.buffer.toString('base64') })) });
    expect(res.status).toBe(200);
    expect(res.body.version).toBe(job.version);
    const correct = res.body.predictions.filter((p: any, i: number) => p.class.label === heldOut[i].label).length;
    expect(correct / heldOut.length).toBeGreaterThanOrEqual(ACCURACY_THRESHOLD);

    // The model is listed and described with its metrics.
    expect((await t.call('GET', '/models')).body.models.map((m: any) => m.model)).toContain('shapes');
    const described = await t.call('GET', '/models/shapes');
    expect(described.body.tasks[0].labels.sort()).toEqual(['circle', 'square', 'triangle']);
  });

  it('answers bad calls with the right status and error code', async () => {
    const cases: Array<[string, Promise<{ status: number; body: any }>, number, string]> = [
      ['missing API key (403, as API Gateway answers it)', t.call('GET', '/models', undefined, { 'x-api-key': '' }), 403, 'INVALID_API_KEY'],
      ['wrong API key', t.call('GET', '/models', undefined, { 'x-api-key': 'tl_wrong_key_wrong_key_wrong' }), 403, 'INVALID_API_KEY'],
      ['unknown model', t.call('POST', '/models/nope/predict', { instances: [{ image: 'aGk=' }] }), 404, 'MODEL_NOT_FOUND'],
      // An encoded "/" or a ".." segment is refused by the gateway before any handler sees it.
      ['model name ../x', t.call('POST', `/models/${encodeURIComponent('../x')}/predict`, { instances: [{ image: 'aGk=' }] }), 400, 'INVALID_PATH'],
      [
        'model name with a space',
        t.call('POST', `/models/${encodeURIComponent('a b')}/predict`, { instances: [{ image: 'aGk=' }] }),
        400,
        'INVALID_MODEL_NAME',
      ],
      ['20 MB body', t.call('POST', '/models/shapes/predict', `{"instances":[{"image":"${'A'.repeat(20 * 1024 * 1024)}"}]}`), 413, 'PAYLOAD_TOO_LARGE'],
      ['33 instances', t.call('POST', '/models/shapes/predict', { instances: Array.from({ length: 33 }, () => ({ image: 'aGk=' })) }), 400, 'INVALID_REQUEST'],
      ['bad base64', t.call('POST', '/models/shapes/predict', { instances: [{ image: '%%%' }] }), 400, 'INVALID_BASE64'],
      ['wrong shape', t.call('POST', '/models/shapes/predict', { instances: [{ features: [1, 2, 3] }] }), 400, 'INVALID_INPUT'],
      ['unknown route', t.call('GET', '/nothing-here'), 404, 'NOT_FOUND'],
      ['wrong method', t.call('DELETE', '/models/shapes'), 405, 'METHOD_NOT_ALLOWED'],
      ['version as a path', t.call('GET', `/models/shapes?version=${encodeURIComponent('../../x')}`), 400, 'INVALID_VERSION'],
      ['broken percent-encoding', t.call('GET', '/models/%E0'), 400, 'INVALID_PATH'],
      ['upload path with a "." segment', t.call('POST', '/datasets/d1/uploads', { files: [{ path: './x.jpg' }] }), 400, 'INVALID_REQUEST'],
      ['upload path with a backslash', t.call('POST', '/datasets/d1/uploads', { files: [{ path: 'a\\b.jpg' }] }), 400, 'INVALID_REQUEST'],
      ['dataset name ../x', t.call('POST', `/datasets/${encodeURIComponent('../x')}/uploads`, { files: [{ path: 'a.jpg' }] }), 400, 'INVALID_PATH'],
      [
        'dataset name with a space',
        t.call('POST', `/datasets/${encodeURIComponent('a b')}/uploads`, { files: [{ path: 'a.jpg' }] }),
        400,
        'INVALID_DATASET_NAME',
      ],
      ['upload URL with broken encoding', t.call('PUT', '/_objects/%E0/x', 'data'), 400, 'INVALID_PATH'],
      ['upload URL with a forged signature', t.call('PUT', '/_objects/default/datasets/d1/a.jpg?expires=9999999999&sig=00', 'data'), 403, 'INVALID_SIGNATURE'],
    ];
    for (const [why, pending, status, code] of cases) {
      const res = await pending;
      expect({ why, status: res.status, code: res.body?.error?.code }).toEqual({ why, status, code });
    }
  });

  it('keeps the published version when a new upload for the same model fails', async () => {
    // Prepare
    const before = (await t.call('GET', '/models/shapes')).body.version;
    const since = Date.now();
    const img = (await generateShapesImages({ perClass: 1, seed: 3 }))[0].buffer;
    // Act: a dataset for model "shapes" whose class "b" has a single image.
    await t.upload('shapes-v2', [
      { path: 'a/1.png', data: img },
      { path: 'a/2.png', data: img },
      { path: 'b/1.png', data: img },
      { path: 'train.json', data: JSON.stringify({ model: 'shapes', base: 'none' }) },
    ]);
    const job = await t.waitForJob('shapes', { since });
    // Assess
    expect(job.state).toBe('failed');
    expect(job.error?.code).toBe('TOO_FEW_EXAMPLES');
    expect(job.error?.message).toContain('b');
    expect((await t.call('GET', '/models/shapes')).body.version).toBe(before);
  });

  it('fails a job with a readable reason for each bad dataset and publishes nothing', async () => {
    const img = (await generateShapesImages({ perClass: 1, seed: 5 }))[0].buffer;
    const cases: Array<[string, Array<{ path: string; data: Buffer | string }>, string]> = [
      [
        'malformed',
        [
          { path: 'a/1.png', data: img },
          { path: 'train.json', data: '{"training": {"epochs": "many"}' },
        ],
        'INVALID_SPEC',
      ],
      [
        'invalid',
        [
          { path: 'a/1.png', data: img },
          { path: 'train.json', data: '{"training": {"epochs": "many"}}' },
        ],
        'INVALID_SPEC',
      ],
      [
        'unknown-base',
        [
          { path: 'a/1.png', data: img },
          { path: 'b/1.png', data: img },
          { path: 'train.json', data: '{"base":"resnet_9000"}' },
        ],
        'UNKNOWN_BASE_MODEL',
      ],
      ['empty', [{ path: 'train.json', data: '{}' }], 'EMPTY_DATASET'],
    ];
    for (const [name, files, code] of cases) {
      await t.upload(name, files);
      const job = await t.waitForJob(name);
      expect({ name, state: job.state, code: job.error?.code }).toEqual({ name, state: 'failed', code });
      expect(job.error?.message.length).toBeGreaterThan(10);
      expect((await t.call('GET', `/models/${name}`)).status).toBe(404);
    }
  });
});
