import { mkdtemp, rm } from 'node:fs/promises';
import { apiEvent } from '../../helpers/api.js';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { createHandler } from '../../../functions/predict/handler.js';
import { createModelCache } from '../../../functions/predict/model-cache.js';
import { buildHeadModel } from '../../../shared/ml/architectures.js';
import { saveModel } from '../../../shared/ml/model-io.js';
import { NONE_INPUT_SHAPE } from '../../../shared/ml/base-models.js';
import { newVersionId, setAlias, versionPrefix, writeMetadata } from '../../../shared/models/registry.js';
import { TrainSpecSchema } from '../../../shared/schemas/spec.js';
import type { ModelMetadata } from '../../../shared/schemas/model.js';

const event = apiEvent;

const predictEvent = (model: string, body: unknown) => event('POST', '/models/{model}/predict', { model }, body);

describe('predict handler', () => {
  let dir: string;
  let handler: ReturnType<typeof createHandler>;
  let png: string;
  let meta: ModelMetadata;

  beforeAll(async () => {
    // Prepare: a real (untrained) head on the pixel base, published like a job would.
    dir = await mkdtemp(path.join(tmpdir(), 'tl-predict-'));
    const store = new FsObjectStore({ root: dir });
    const size = NONE_INPUT_SHAPE[0] * NONE_INPUT_SHAPE[1] * NONE_INPUT_SHAPE[2];
    const tasks = [
      { name: 'shape', type: 'classification' as const, auxiliary: false, labels: ['circle', 'square', 'triangle'] },
      { name: 'aux', type: 'classification' as const, auxiliary: true, labels: ['x', 'y'] },
    ];
    const model = await buildHeadModel({ embeddingSize: size, tasks, sharing: { method: 'hard', trunk: [8] } });
    const version = newVersionId();
    await saveModel(model, store, versionPrefix('shapes', version));
    meta = {
      model: 'shapes',
      version,
      createdAt: new Date().toISOString(),
      kind: 'train',
      input: { type: 'image', shape: NONE_INPUT_SHAPE },
      base: { name: 'none', embeddingSize: size },
      tasks,
      dataset: { name: 'shapes', hash: 'abc' },
      spec: TrainSpecSchema.parse({ base: 'none' }),
      metrics: {},
    };
    await writeMetadata(store, meta);
    await setAlias(store, 'shapes', 'latest', version);
    handler = createHandler({ store, models: createModelCache(store) });
    png = (
      await sharp({ create: { width: 40, height: 30, channels: 3, background: '#3366cc' } })
        .png()
        .toBuffer()
    ).toString('base64');
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('predicts every main task with top-k scores, one record per instance', async () => {
    // Act
    const res = await handler(predictEvent('shapes', { instances: [{ image: png }, { image: `data:image/png;base64,${png}` }], topK: 2 }));
    // Assess
    expect(res.statusCode).toBe(200);
    const body = JSON.parse(res.body);
    expect(body).toMatchObject({ model: 'shapes', version: meta.version });
    expect(body.predictions).toHaveLength(2);
    expect(Object.keys(body.predictions[0])).toEqual(['shape']);
    expect(body.predictions[0].shape.scores).toHaveLength(2);
    expect(['circle', 'square', 'triangle']).toContain(body.predictions[0].shape.label);
    expect(body.predictions[0]).toEqual(body.predictions[1]);
  });

  it('returns an auxiliary task only when asked', async () => {
    const res = await handler(predictEvent('shapes', { instances: [{ image: png }], tasks: ['aux', 'shape'] }));
    expect(Object.keys(JSON.parse(res.body).predictions[0]).sort()).toEqual(['aux', 'shape']);
  });

  it.each([
    ['bad base64', { instances: [{ image: '***not base64***' }] }, 400, 'INVALID_BASE64'],
    ['base64 that is not an image', { instances: [{ image: Buffer.from('hello world, not an image').toString('base64') }] }, 400, 'INVALID_IMAGE'],
    ['the wrong input kind', { instances: [{ features: [1, 2, 3] }] }, 400, 'INVALID_INPUT'],
    ['33 instances', { instances: Array.from({ length: 33 }, () => ({ image: 'aGk=' })) }, 400, 'INVALID_REQUEST'],
    ['no instances', { instances: [] }, 400, 'INVALID_REQUEST'],
    ['an unknown task', { instances: [{ image: 'aGk=' }], tasks: ['nope'] }, 400, 'UNKNOWN_TASK'],
    ['an empty task list', { instances: [{ image: 'aGk=' }], tasks: [] }, 400, 'INVALID_REQUEST'],
    ['malformed JSON', '{"instances": [', 400, 'INVALID_JSON'],
    ['a 20 MB body', 'x'.repeat(20 * 1024 * 1024), 413, 'PAYLOAD_TOO_LARGE'],
  ])('refuses %s', async (_why, body, status, code) => {
    const res = await handler(predictEvent('shapes', body));
    expect(res.statusCode).toBe(status);
    expect(JSON.parse(res.body).error.code).toBe(code);
  });

  it.each([
    ['an unknown model', 'nope', 404, 'MODEL_NOT_FOUND'],
    ['a path as model name', '../x', 400, 'INVALID_MODEL_NAME'],
  ])('answers %s', async (_why, model, status, code) => {
    const res = await handler(predictEvent(model, { instances: [{ image: png }] }));
    expect(res.statusCode).toBe(status);
    expect(JSON.parse(res.body).error.code).toBe(code);
  });

  it('refuses an unknown version of a known model with 404', async () => {
    const res = await handler(predictEvent('shapes', { instances: [{ image: png }], version: 'stable' }));
    expect(res.statusCode).toBe(404);
  });

  it('lists models and describes the serving version', async () => {
    const list = JSON.parse((await handler(event('GET', '/models', null))).body);
    expect(list.models).toEqual([expect.objectContaining({ model: 'shapes', version: meta.version, base: 'none' })]);
    const one = await handler(event('GET', '/models/{model}', { model: 'shapes' }));
    expect(JSON.parse(one.body)).toMatchObject({ model: 'shapes', version: meta.version, tasks: meta.tasks });
  });

  it('answers an unknown route with 404 and no job with JOB_NOT_FOUND', async () => {
    expect((await handler(event('GET', '/nope', null))).statusCode).toBe(404);
    const job = await handler(event('GET', '/models/{model}/job', { model: 'shapes' }));
    expect(job.statusCode).toBe(404);
    expect(JSON.parse(job.body).error.code).toBe('JOB_NOT_FOUND');
  });
});
