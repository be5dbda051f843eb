import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler } from '../../../functions/predict/handler.js';
import { createModelCache } from '../../../functions/predict/model-cache.js';
import { decodeImage } from '../../../shared/data/images.js';
import { generateShapesImages } from '../../../shared/local/demo-data.js';
import { buildHeadModel } from '../../../shared/ml/architectures.js';
import { NONE_INPUT_SHAPE, resolveBase } from '../../../shared/ml/base-models.js';
import { saveModel } from '../../../shared/ml/model-io.js';
import { exportModelToOnnx, NotExportableError } from '../../../shared/ml/onnx/model-export.js';
import { newVersionId, setAlias, versionPrefix, writeMetadata } from '../../../shared/models/registry.js';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import type { ModelMetadata, TaskHead } from '../../../shared/schemas/model.js';
import { TrainSpecSchema } from '../../../shared/schemas/spec.js';
import { loadTf } from '../../../shared/tf/loader.js';
import { tempStore } from '../../helpers/temp-store.js';
import { apiEvent } from '../../helpers/api.js';
import { runCli } from '../../../shared/local/cli.js';

const predictEvent = (model: string, body: unknown) => ({ ...apiEvent('POST', '/models/{model}/predict', { model }, body), path: `/models/${model}/predict` });

const TASKS: TaskHead[] = [
  { name: 'shape', type: 'classification', auxiliary: false, labels: ['circle', 'square', 'triangle'] },
  { name: 'size', type: 'regression', auxiliary: false, size: 2, mean: [10, -3], std: [4, 0.5] },
  { name: 'aux', type: 'classification', auxiliary: true, labels: ['x', 'y'] },
];

/** Publishes a head model (trained a few steps on random embeddings) like a job would. */
async function publish(store: FsObjectStore, model: string, base: string, input: ModelMetadata['input'], embeddingSize: number): Promise<ModelMetadata> {
  const { tf } = await loadTf();
  const heads = await buildHeadModel({ embeddingSize, tasks: TASKS, sharing: { method: 'hard', trunk: [16] } });
  heads.compile({ optimizer: tf.train.adam(0.01), loss: ['categoricalCrossentropy', 'meanSquaredError', 'categoricalCrossentropy'] });
  const n = 16;
  const x = tf.randomUniform([n, embeddingSize], 0, 1, 'float32', 5);
  const cls = (k: number) =>
    tf.oneHot(
      tf.tensor1d(
        Array.from({ length: n }, (_, i) => i % k),
        'int32',
      ),
      k,
    );
  await heads.fit(x, [cls(3), tf.randomNormal([n, 2], 0, 1, 'float32', 6), cls(2)], { epochs: 3, verbose: 0 });
  const version = newVersionId();
  await saveModel(heads, store, versionPrefix(model, version));
  heads.dispose();
  const meta: ModelMetadata = {
    model,
    version,
    createdAt: new Date().toISOString(),
    kind: 'train',
    input,
    base: { name: base, embeddingSize },
    tasks: TASKS,
    dataset: { name: model, hash: 'abc' },
    spec: TrainSpecSchema.parse({ base }),
    metrics: {},
  };
  await writeMetadata(store, meta);
  await setAlias(store, model, 'latest', version);
  return meta;
}

type Prediction = Record<string, { scores?: Array<{ label: string; score: number }>; value?: number[] }>;

/** The endpoint's predictions against the ONNX outputs: same probabilities per label, same regression values. */
function expectSame(predictions: Prediction[], outputs: Record<string, Float32Array>) {
  predictions.forEach((p, row) => {
    expect(Object.keys(p)).toEqual(['shape', 'size']);
    const probs = outputs.shape.subarray(row * 3, row * 3 + 3);
    for (const s of p.shape.scores!) expect(probs[TASKS[0].labels!.indexOf(s.label)]).toBeCloseTo(s.score, 4);
    const values = outputs.size.subarray(row * 2, row * 2 + 2);
    p.size.value!.forEach((v, j) => expect(values[j]).toBeCloseTo(v, 3));
  });
}

async function run(bytes: Uint8Array, name: string, data: Float32Array, dims: number[]) {
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  const r = await session.run({ [name]: new ort.Tensor('float32', data, dims) });
  await session.release();
  return { outputs: Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.data as Float32Array])), names: session.outputNames };
}

describe('exportModelToOnnx', () => {
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  let handler: ReturnType<typeof createHandler>;
  let images: Buffer[];

  beforeAll(async () => {
    ({ store, cleanup } = await tempStore('tl-onnx-export-'));
    handler = createHandler({ store, models: createModelCache(store) });
    images = (await generateShapesImages({ perClass: 1, seed: 9 })).slice(0, 3).map((i) => i.buffer);
  });
  afterAll(async () => cleanup());

  it('gives the predictions of the endpoint for a model on mobilenet_v2 (image in, one output per main task, tasks in metadata)', async () => {
    // Prepare
    await resolveBase(store, 'mobilenet_v2');
    const meta = await publish(store, 'pets', 'mobilenet_v2', { type: 'image', shape: [224, 224, 3] }, 1280);
    const pixels = new Float32Array(images.length * 224 * 224 * 3);
    for (const [i, b] of images.entries()) pixels.set(await decodeImage(b, [224, 224, 3]), i * 224 * 224 * 3);

    // Act
    const bytes = await exportModelToOnnx(store, meta);
    const { outputs, names } = await run(bytes, 'image', pixels, [images.length, 224, 224, 3]);
    const res = await handler(predictEvent('pets', { instances: images.map((b) => ({ image: b.toString('base64') })), topK: 3 }));

    // Assess
    expect(res.statusCode).toBe(200);
    expect(names).toEqual(['shape', 'size']);
    expectSame((JSON.parse(res.body) as { predictions: Prediction[] }).predictions, outputs);
    const model = onnxProto.onnx.ModelProto.decode(bytes);
    const tasks = JSON.parse(model.metadataProps.find((p) => p.key === 'tl.tasks')!.value!) as unknown;
    expect(tasks).toEqual([
      { name: 'shape', type: 'classification', labels: ['circle', 'square', 'triangle'] },
      { name: 'size', type: 'regression' },
    ]);
  }, 300_000);

  it('exports a pixel-base model and a vector model the same way', async () => {
    // Prepare
    const px = await publish(
      store,
      'tiny',
      'none',
      { type: 'image', shape: [...NONE_INPUT_SHAPE] },
      NONE_INPUT_SHAPE[0] * NONE_INPUT_SHAPE[1] * NONE_INPUT_SHAPE[2],
    );
    // Standardised features, as a vector job publishes them (a null read as the train mean).
    const vec = await publish(store, 'table', 'none', { type: 'vector', size: 6, mean: [0, 1, 2, -1, 100, 0.5], std: [1, 2, 0.5, 4, 50, 1] }, 6);
    const pixels = new Float32Array(images.length * 32 * 32 * 3);
    for (const [i, b] of images.entries()) pixels.set(await decodeImage(b, [32, 32, 3]), i * 32 * 32 * 3);
    const features = [
      [0.1, 2, -1, 0, 5, 3],
      [1, 1, null, 1, 1, 1],
    ];

    // Act
    const pxOut = await run(await exportModelToOnnx(store, px), 'image', pixels, [images.length, 32, 32, 3]);
    const pxRes = await handler(predictEvent('tiny', { instances: images.map((b) => ({ image: b.toString('base64') })) }));
    const vecOut = await run(
      await exportModelToOnnx(store, vec),
      'features',
      Float32Array.from(features.flat(), (v) => v ?? Number.NaN),
      [2, 6],
    );
    const vecRes = await handler(predictEvent('table', { instances: features.map((f) => ({ features: f })) }));

    // Assess
    expect(pxRes.statusCode).toBe(200);
    expectSame((JSON.parse(pxRes.body) as { predictions: Prediction[] }).predictions, pxOut.outputs);
    expect(vecRes.statusCode).toBe(200);
    expectSame((JSON.parse(vecRes.body) as { predictions: Prediction[] }).predictions, vecOut.outputs);
  }, 300_000);

  it('serves the file at GET /models/{model}/export and answers 400/404 for bad requests', async () => {
    // Prepare: the vector model published by the test above
    const get = (model: string, query: Record<string, string>) =>
      handler({ ...predictEvent(model, {}), httpMethod: 'GET', resource: '/models/{model}/export', body: null, queryStringParameters: query });

    // Act
    const res = await get('table', { format: 'onnx', tasks: 'size' });
    const bytes = Buffer.from(res.body, 'base64');
    const out = await run(bytes, 'features', new Float32Array(6).fill(1), [1, 6]);
    const badFormat = await get('table', { format: 'pickle' });
    const badTask = await get('table', { tasks: 'colour' });
    const missing = await get('nope', {});

    // Assess
    expect(res.statusCode).toBe(200);
    expect(res.isBase64Encoded).toBe(true);
    expect(res.headers).toMatchObject({ 'content-type': 'application/octet-stream' });
    expect(out.names).toEqual(['size']);
    expect([badFormat.statusCode, badTask.statusCode, missing.statusCode]).toEqual([400, 400, 404]);
    expect(JSON.parse(badTask.body).error.code).toBe('UNKNOWN_TASK');
  });

  it('tl export saves the file the endpoint serves, and the model card beside it', async () => {
    // Prepare: fetch goes straight to the handler, as the local server would send it
    const dir = await mkdtemp(path.join(tmpdir(), 'tl-export-cli-'));
    const fetchToHandler = (async (input: string | URL) => {
      const url = new URL(String(input));
      const model = decodeURIComponent(url.pathname.split('/')[2]);
      const query = Object.fromEntries(url.searchParams.entries());
      const resource = url.pathname.endsWith('/card') ? '/models/{model}/card' : '/models/{model}/export';
      const r = await handler({ ...predictEvent(model, {}), httpMethod: 'GET', resource, body: null, queryStringParameters: query });
      return new Response(r.isBase64Encoded ? Buffer.from(r.body, 'base64') : r.body, { status: r.statusCode });
    }) as typeof fetch;
    const out: string[] = [];
    const io = {
      stdout: { write: (t: string) => void out.push(t) },
      stderr: { write: (t: string) => void out.push(t) },
      env: {},
      cwd: dir,
      fetch: fetchToHandler,
    };

    // Act
    const code = await runCli(['export', 'table', '--task', 'shape', '-o', 'table.onnx', '--endpoint', 'http://127.0.0.1:9', '--api-key', 'k'], io);
    const saved = await readFile(path.join(dir, 'table.onnx'));
    const ran = await run(saved, 'features', new Float32Array(6).fill(1), [1, 6]);
    const card = await readFile(path.join(dir, 'table.md'), 'utf8');
    await rm(dir, { recursive: true, force: true });

    // Assess
    expect(code).toBe(0);
    expect(ran.names).toEqual(['shape']);
    expect(ran.outputs.shape.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    expect(card).toContain('# Model card: table @');
    expect(card).toContain('content hash `abc`');
    expect(card).toContain('Labels: circle, square, triangle.');
  });

  it('refuses a prototype model with a reason', async () => {
    const meta = { ...(await publish(store, 'proto', 'none', { type: 'vector', size: 4 }, 4)), kind: 'prototype' as const };
    await expect(exportModelToOnnx(store, meta)).rejects.toThrow(NotExportableError);
    await expect(exportModelToOnnx(store, meta)).rejects.toThrow(/prototype model/);
  });
});
