import * as ort from 'onnxruntime-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createHandler } from '../../../functions/predict/handler.js';
import { createModelCache } from '../../../functions/predict/model-cache.js';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { decodeImage } from '../../../shared/data/images.js';
import { generateShapesImages } from '../../../shared/local/demo-data.js';
import { buildHeadModel } from '../../../shared/ml/architectures.js';
import { resolveBase } from '../../../shared/ml/base-models.js';
import { concatRows, cutKey, cutParts, describeCut, type EmbeddingCut } from '../../../shared/ml/cuts.js';
import { isMultiCut, loadEmbedder, type Embedder, type MultiCutEmbedder } from '../../../shared/ml/embedder.js';
import { embeddingBaseKey, embeddingKeyFor } from '../../../shared/ml/embedding-cache.js';
import { FineTuneError } from '../../../shared/ml/fine-tune.js';
import { saveModel } from '../../../shared/ml/model-io.js';
import { exportModelToOnnx } from '../../../shared/ml/onnx/model-export.js';
import { configureEngine } from '../../../shared/ml/onnx/runtime.js';
import { prepareFineTuneBase } from '../../../shared/ml/transfer-job.js';
import { buildModelCard } from '../../../shared/models/model-card.js';
import { newVersionId, setAlias, versionPrefix, writeMetadata } from '../../../shared/models/registry.js';
import { ModelMetadataSchema, type ModelMetadata, type TaskHead } from '../../../shared/schemas/model.js';
import { TrainSpecSchema, type TrainSpec } from '../../../shared/schemas/spec.js';
import { apiEvent } from '../../helpers/api.js';
import { tempStore } from '../../helpers/temp-store.js';
import { argmaxRows, relativeMaxDiff } from '../../helpers/agreement.js';

/** The cut the search may pick on mobilenet_v2: the pooled embedding, then two pooled maps from lower blocks. */
const CONCAT: EmbeddingCut = {
  layer: 'flatten_1',
  pooling: 'none',
  concat: [
    { layer: 'block_13_expand_relu', pooling: 'avg' },
    { layer: 'block_16_project', pooling: 'avg' },
  ],
};
const SIDE = 224;
const PER = SIDE * SIDE * 3;
const TASKS: TaskHead[] = [{ name: 'shape', type: 'classification', auxiliary: false, labels: ['circle', 'square', 'triangle'] }];

/** Column block [from, from + width) of count rows of `size` values. */
function columns(x: Float32Array, count: number, size: number, from: number, width: number): Float32Array {
  const out = new Float32Array(count * width);
  for (let r = 0; r < count; r++) out.set(x.subarray(r * size + from, r * size + from + width), r * width);
  return out;
}

/** The concat embedder against each part's own embedder, part by part, on the current engine. */
async function compareWithParts(store: FsObjectStore, pixels: Uint8Array, count: number) {
  const base = await resolveBase(store, 'mobilenet_v2');
  const concat = await loadEmbedder(store, base, { embedding: CONCAT });
  const parts: Embedder[] = [];
  for (const p of cutParts(CONCAT)) parts.push(await loadEmbedder(store, base, { embedding: p }));
  const got = await concat.embed(pixels, count);
  const each: Float32Array[] = [];
  for (const p of parts) each.push(await p.embed(pixels, count));
  const sizes = parts.map((p) => p.size);
  let from = 0;
  const diffs = sizes.map((s, i) => {
    const d = relativeMaxDiff(each[i], columns(got, count, concat.size, from, s));
    from += s;
    return d;
  });
  const engines = [concat.engine, ...parts.map((p) => p.engine)];
  concat.dispose();
  for (const p of parts) p.dispose();
  return { size: concat.size, sizes, diffs, got, expected: concatRows(each, sizes, count), engines };
}

/** A head model on the concat embedding, with random weights, published under `model` like a job would. */
async function publishConcatModel(store: FsObjectStore, model: string, embeddingSize: number): Promise<ModelMetadata> {
  const heads = await buildHeadModel({ embeddingSize, tasks: TASKS, sharing: { method: 'hard', trunk: [16] }, seed: 7 });
  const version = newVersionId();
  await saveModel(heads, store, versionPrefix(model, version));
  heads.dispose();
  const meta = ModelMetadataSchema.parse({
    model,
    version,
    createdAt: new Date().toISOString(),
    kind: 'train',
    input: { type: 'image', shape: [SIDE, SIDE, 3] },
    base: { name: 'mobilenet_v2', embeddingSize, cut: CONCAT },
    tasks: TASKS,
    dataset: { name: model, hash: 'abc' },
    spec: TrainSpecSchema.parse({ base: 'mobilenet_v2', cut: CONCAT }),
    metrics: {},
  });
  await writeMetadata(store, meta);
  await setAlias(store, model, 'latest', version);
  return meta;
}

describe('concat cut', () => {
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  let images: Buffer[];
  let pixels: Uint8Array;
  let concatSize = 0;
  const log = () => {};

  beforeAll(async () => {
    ({ store, cleanup } = await tempStore('tl-concat-'));
    images = (await generateShapesImages({ perClass: 1, seed: 4 })).slice(0, 3).map((i) => i.buffer);
    pixels = new Uint8Array(images.length * PER);
    for (const [i, b] of images.entries()) pixels.set(await decodeImage(b, [SIDE, SIDE, 3]), i * PER);
  });
  afterEach(() => configureEngine({ log }));
  afterAll(async () => {
    configureEngine({});
    await cleanup();
  });

  it('onnx engine: the concat embedder gives each part of one pass side by side, as the parts’ own embedders do', async () => {
    // Prepare
    configureEngine({ engine: 'onnx', threads: 1, log });

    // Act
    const r = await compareWithParts(store, pixels, images.length);

    // Assess
    expect(r.engines).toEqual(['onnx', 'onnx', 'onnx', 'onnx']);
    expect(r.size).toBe(r.sizes.reduce((a, b) => a + b, 0));
    expect(r.sizes[0]).toBe(1280);
    expect(r.got).toHaveLength(images.length * r.size);
    for (const d of r.diffs) expect(d).toBeLessThanOrEqual(1e-4);
    concatSize = r.size;
  }, 300_000);

  it.each(['onnx', 'tfjs'] as const)(
    '%s engine: a concat cut among several cuts of one pass comes back concatenated',
    async (engine) => {
      // Prepare
      configureEngine({ engine, threads: 1, log });
      const base = await resolveBase(store, 'mobilenet_v2');
      const flatten = cutParts(CONCAT)[0];

      // Act
      const multi = await loadEmbedder(store, base, { embedding: flatten, cuts: [flatten, CONCAT] });
      const alone = await loadEmbedder(store, base, { embedding: CONCAT });
      const [first, both] = isMultiCut(multi) ? await multi.embedCuts(pixels, images.length) : [];
      const expected = await alone.embed(pixels, images.length);

      // Assess
      expect([multi.engine, alone.engine]).toEqual([engine, engine]);
      expect(isMultiCut(multi)).toBe(true);
      expect((multi as MultiCutEmbedder).sizes).toEqual([1280, alone.size]);
      expect(first).toHaveLength(images.length * 1280);
      expect(relativeMaxDiff(expected, both)).toBeLessThanOrEqual(1e-4);
    },
    400_000,
  );

  it('tfjs engine: the concat embedder equals its parts’ embedders side by side, from one tfjs model with several outputs', async () => {
    // Prepare
    configureEngine({ engine: 'tfjs', log });

    // Act
    const r = await compareWithParts(store, pixels, images.length);

    // Assess
    expect(r.engines).toEqual(['tfjs', 'tfjs', 'tfjs', 'tfjs']);
    expect(r.size).toBe(r.sizes.reduce((a, b) => a + b, 0));
    for (const d of r.diffs) expect(d).toBeLessThanOrEqual(1e-4);
    expect(relativeMaxDiff(r.expected, r.got)).toBeLessThanOrEqual(1e-4);
  }, 400_000); // three images through tfjs wasm, four times: slow on a loaded 2-core machine

  it('gives the concat cut its own embedding cache folder and embedder key', async () => {
    // Prepare
    const base = await resolveBase(store, 'mobilenet_v2');
    const parts = cutParts(CONCAT);
    const reordered: EmbeddingCut = { ...parts[1], concat: [parts[0], parts[2]] };

    // Act
    const key = embeddingBaseKey('mobilenet_v2', CONCAT);
    const withIdentity = await embeddingKeyFor(store, base, CONCAT);

    // Assess
    expect(key).toBe('mobilenet_v2~flatten_1+block_13_expand_relu~avg+block_16_project~avg');
    for (const p of parts) {
      expect(key).not.toBe(embeddingBaseKey('mobilenet_v2', p));
      expect(withIdentity).not.toBe(await embeddingKeyFor(store, base, p));
      expect(cutKey(CONCAT)).not.toBe(cutKey(p));
    }
    expect(key).not.toBe(embeddingBaseKey('mobilenet_v2', reordered));
    expect(key).not.toBe(embeddingBaseKey('mobilenet_v2'));
    expect(embeddingBaseKey('mobilenet_v2', parts[1])).toBe('mobilenet_v2~block_13_expand_relu~avg');
  });

  it('predicts a model whose metadata cut is the concat, and its exported ONNX file agrees', async () => {
    // Prepare
    configureEngine({ engine: 'auto', log });
    if (!concatSize) concatSize = (await loadEmbedder(store, await resolveBase(store, 'mobilenet_v2'), { embedding: CONCAT })).size;
    const meta = await publishConcatModel(store, 'concat-pets', concatSize);
    const handler = createHandler({ store, models: createModelCache(store) });
    const event = {
      ...apiEvent('POST', '/models/{model}/predict', { model: 'concat-pets' }, { instances: images.map((b) => ({ image: b.toString('base64') })), topK: 3 }),
      path: '/models/concat-pets/predict',
    };

    // Act
    const res = await handler(event);
    const bytes = await exportModelToOnnx(store, meta);
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
    const out = await session.run({ image: new ort.Tensor('float32', Float32Array.from(pixels), [images.length, SIDE, SIDE, 3]) });
    await session.release();
    const onnxProbs = out.shape.data as Float32Array;
    const labels = TASKS[0].labels!;
    const predictions = (JSON.parse(res.body) as { predictions: Array<{ shape: { scores: Array<{ label: string; score: number }> } }> }).predictions;
    const served = new Float32Array(images.length * labels.length);
    predictions.forEach((p, r) => {
      for (const s of p.shape.scores) served[r * labels.length + labels.indexOf(s.label)] = s.score;
    });

    // Assess
    expect(res.statusCode).toBe(200);
    expect(session.inputNames).toEqual(['image']);
    expect(session.outputNames).toEqual(['shape']);
    expect(relativeMaxDiff(served, onnxProbs)).toBeLessThanOrEqual(1e-3);
    expect(argmaxRows(onnxProbs, labels.length)).toEqual(argmaxRows(served, labels.length));
    expect(await buildModelCard(store, meta)).toContain(
      'cut at several layers of one pass, concatenated in this order: `flatten_1`, `block_13_expand_relu` (average-pooled), `block_16_project` (average-pooled)',
    );
  }, 400_000);

  it('serves a model: base whose source model reads the concat cut', async () => {
    // Prepare: the model published by the test above
    configureEngine({ engine: 'auto', log });
    const base = await resolveBase(store, 'model:concat-pets');

    // Act
    const embedder = await loadEmbedder(store, base);
    const x = await embedder.embed(pixels, images.length);
    const refused = loadEmbedder(store, base, { embedding: CONCAT });

    // Assess
    expect(embedder.size).toBe(16);
    expect(x).toHaveLength(images.length * 16);
    expect(x.every(Number.isFinite)).toBe(true);
    await expect(refused).rejects.toThrow(/concat cut \(concat of flatten_1, block_13_expand_relu \(avg\), block_16_project \(avg\)\)/);
    embedder.dispose();
  }, 300_000);

  it('accepts a concat cut in a spec and in metadata, and refuses it for fine-tuning, naming it', async () => {
    // Act
    const spec = TrainSpecSchema.safeParse({ base: 'mobilenet_v2', cut: CONCAT });
    const fineTune = TrainSpecSchema.safeParse({ base: 'mobilenet_v2', cut: CONCAT, fineTune: { layers: 2 } });
    const onModel = TrainSpecSchema.safeParse({ base: 'model:pets', cut: CONCAT });
    const plain = TrainSpecSchema.safeParse({ base: 'mobilenet_v2', cut: { layer: 'block_16_project', pooling: 'avg' }, fineTune: { layers: 2 } });
    // A spec assembled in code, past the schema, still meets the job's own check.
    const inCode = { ...TrainSpecSchema.parse({ base: 'mobilenet_v2', fineTune: { layers: 2 } }), cut: CONCAT } as TrainSpec;
    const job = prepareFineTuneBase(store, inCode, TASKS);

    // Assess
    expect(spec.success).toBe(true);
    expect(spec.data?.cut).toEqual(CONCAT);
    expect(fineTune.success).toBe(false);
    expect(fineTune.error?.issues).toHaveLength(1);
    expect(fineTune.error?.issues[0].message).toContain('concat cut (concat of flatten_1, block_13_expand_relu, block_16_project)');
    expect(fineTune.error?.issues[0].message).toContain('fine-tuning');
    expect(onModel.success).toBe(false);
    expect(plain.success).toBe(false);
    expect(plain.error?.issues[0].message).toContain('not with "fineTune"');
    await expect(job).rejects.toThrow(FineTuneError);
    await expect(job).rejects.toThrow(/concat cut concat of flatten_1, block_13_expand_relu \(avg\), block_16_project \(avg\)/);
    expect(describeCut(CONCAT)).toBe('concat of flatten_1, block_13_expand_relu (avg), block_16_project (avg)');
    expect(ModelMetadataSchema.shape.base.parse({ name: 'mobilenet_v2', cut: CONCAT }).cut).toEqual(CONCAT);
  });
});
