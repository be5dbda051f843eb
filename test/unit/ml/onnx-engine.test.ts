import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LayersModel, SymbolicTensor, Tensor } from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { tempStore } from '../../helpers/temp-store.js';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { descriptorKey, resolveBase } from '../../../shared/ml/base-models.js';
import { loadEmbedder } from '../../../shared/ml/embedder.js';
import { objectStoreIO } from '../../../shared/ml/model-io.js';
import { loadOnnxEmbedder } from '../../../shared/ml/onnx/embedder.js';
import { exportLayersModelToOnnx, UnsupportedLayerError } from '../../../shared/ml/onnx/export.js';
import { configureEngine, EngineUnavailableError, frozenEngine } from '../../../shared/ml/onnx/runtime.js';
import { generateShapesImages } from '../../../shared/local/demo-data.js';
import { decodeImage } from '../../../shared/data/images.js';
import { loadTf, type Tf } from '../../../shared/tf/loader.js';
import { buildHeadModel } from '../../../shared/ml/architectures.js';
import { argmaxRows, relativeMaxDiff } from '../../helpers/agreement.js';

async function runOnnx(bytes: Uint8Array, feeds: Record<string, { data: Float32Array; dims: number[] }>): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  const r = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor('float32', v.data, v.dims)])));
  await session.release();
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.data as Float32Array]));
}

const seeded = (n: number, seed: number) => {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1);
};

describe('ONNX engine', () => {
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  let tf: Tf;
  const lines: string[] = [];
  const log = (l: string) => void lines.push(l);

  beforeAll(async () => {
    ({ store, cleanup } = await tempStore('tl-onnx-'));
    ({ tf } = await loadTf());
  });
  afterEach(() => configureEngine({ log }));
  afterAll(async () => {
    configureEngine({});
    await cleanup();
  });

  it('runs the built-in base like tfjs on 32 images: embeddings within 1e-3 of the largest value, same top class, both cuts from one pass', async () => {
    // Prepare: 32 generated JPEG/PNG/WebP images decoded at the base's input size
    const base = await resolveBase(store, 'mobilenet_v2');
    if (base.kind !== 'pretrained') throw new Error('expected a pretrained base');
    const images = await generateShapesImages({ perClass: 11, seed: 3 });
    const count = 32;
    const pixels = new Uint8Array(count * 224 * 224 * 3);
    for (let i = 0; i < count; i++) pixels.set(await decodeImage(images[i].buffer, [224, 224, 3]), i * 224 * 224 * 3);
    configureEngine({ engine: 'tfjs', log });
    const tfjsEmbedder = await loadEmbedder(store, base);
    const full = await tf.loadLayersModel(objectStoreIO(store, 'base-models/mobilenet_v2'));
    configureEngine({ engine: 'onnx', threads: 1, log });

    // Act
    const expected = await tfjsEmbedder.embed(pixels, count);
    const onnxEmbedder = await loadEmbedder(store, base);
    const got = await onnxEmbedder.embed(pixels, count, { batchSize: 8 });
    const both = await loadOnnxEmbedder(store, { name: base.name, descriptor: base.descriptor }, [
      base.descriptor.embedding,
      { layer: 'dense_3', pooling: 'none' },
    ]);
    const [emb, probs] = await both.embedCuts(pixels, count);
    const tfProbs = tf.tidy(() => (full.predict(tf.tensor4d(Float32Array.from(pixels), [count, 224, 224, 3]).div(255)) as Tensor).dataSync() as Float32Array);

    // Assess
    expect(tfjsEmbedder.engine).toBe('tfjs');
    expect(onnxEmbedder.engine).toBe('onnx');
    expect(got).toHaveLength(count * 1280);
    expect(relativeMaxDiff(expected, got)).toBeLessThan(1e-3);
    expect(relativeMaxDiff(expected, emb)).toBeLessThan(1e-3);
    expect(both.sizes).toEqual([1280, 5]);
    expect(relativeMaxDiff(tfProbs, probs)).toBeLessThan(1e-3);
    expect(argmaxRows(probs, 5)).toEqual(argmaxRows(tfProbs, 5));
    full.dispose();
    tfjsEmbedder.dispose();
  }, 400_000); // 32 images through tfjs wasm: slow on a loaded 2-core machine

  it('writes the exported graph once beside the base and reuses it, keyed by content', async () => {
    // Prepare
    configureEngine({ engine: 'onnx', threads: 1, log });
    const base = await resolveBase(store, 'mobilenet_v2');

    // Act
    const a = await loadEmbedder(store, base);
    const graphs = await store.list('base-models/mobilenet_v2/onnx/');
    const b = await loadEmbedder(store, base);

    // Assess: one graph per (base, cut) and nothing new on the second load
    expect(graphs.length).toBeGreaterThanOrEqual(1);
    expect((await store.list('base-models/mobilenet_v2/onnx/')).map((o) => o.etag)).toEqual(graphs.map((o) => o.etag));
    expect((a as unknown as { graphKey: string }).graphKey).toBe((b as unknown as { graphKey: string }).graphKey);
    expect(graphs.map((o) => o.key)).toContain((a as unknown as { graphKey: string }).graphKey);
  });

  it('gives concurrent embeds of one session the same answers as one at a time (no shared input buffer)', async () => {
    // Prepare: 8 different images; each embedded alone, one after the other.
    configureEngine({ engine: 'onnx', threads: 1, log });
    const base = await resolveBase(store, 'mobilenet_v2');
    const embedder = await loadEmbedder(store, base);
    const per = 224 * 224 * 3;
    const images = await generateShapesImages({ perClass: 3, seed: 21 });
    const pixels = new Uint8Array(8 * per);
    for (let i = 0; i < 8; i++) pixels.set(await decodeImage(images[i].buffer, [224, 224, 3]), i * per);
    const one = (i: number) => embedder.embed(pixels.subarray(i * per, (i + 1) * per), 1);
    const alone: Float32Array[] = [];
    for (let i = 0; i < 8; i++) alone.push(await one(i));

    // Act: the same 8 at once, and two runs of 4 at once.
    const together = await Promise.all(Array.from({ length: 8 }, (_, i) => one(i)));
    const halves = await Promise.all([embedder.embed(pixels.subarray(0, 4 * per), 4), embedder.embed(pixels.subarray(4 * per), 4)]);

    // Assess: each image keeps its own embedding (the images differ, so a shared buffer would show).
    expect(relativeMaxDiff(alone[0], alone[1])).toBeGreaterThan(1e-2);
    for (let i = 0; i < 8; i++) {
      expect(relativeMaxDiff(alone[i], together[i])).toBeLessThan(1e-5);
      expect(relativeMaxDiff(alone[i], halves[i >> 2].subarray((i % 4) * embedder.size, ((i % 4) + 1) * embedder.size))).toBeLessThan(1e-5);
    }
  });

  it('exports a small trained CNN with two heads (softmax, sigmoid) that agrees with tfjs', async () => {
    // Prepare: every layer kind the exporter maps, trained a few steps so batch norm statistics move
    const input = tf.input({ shape: [16, 16, 3] });
    let x = tf.layers
      .zeroPadding2d({
        padding: [
          [1, 0],
          [0, 1],
        ],
      })
      .apply(input) as SymbolicTensor;
    x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false, name: 'c1' }).apply(x) as SymbolicTensor;
    x = tf.layers.batchNormalization({ name: 'bn1' }).apply(x) as SymbolicTensor;
    x = tf.layers.reLU({ maxValue: 6 }).apply(x) as SymbolicTensor;
    const d = tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', activation: 'relu' }).apply(x) as SymbolicTensor;
    const p = tf.layers.conv2d({ filters: 16, kernelSize: 1, activation: 'elu' }).apply(x) as SymbolicTensor;
    let y = tf.layers.add().apply([d, p]) as SymbolicTensor;
    y = tf.layers.batchNormalization({}).apply(y) as SymbolicTensor;
    y = tf.layers.concatenate().apply([y, tf.layers.leakyReLU({ alpha: 0.1 }).apply(y) as SymbolicTensor]) as SymbolicTensor;
    const pooled = tf.layers.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same' }).apply(y) as SymbolicTensor;
    const flat = tf.layers.flatten().apply(pooled) as SymbolicTensor;
    const gap = tf.layers.globalAveragePooling2d({}).apply(tf.layers.maxPooling2d({ poolSize: 2 }).apply(y)) as SymbolicTensor;
    const joined = tf.layers.concatenate().apply([flat, gap]) as SymbolicTensor;
    const h = tf.layers.dropout({ rate: 0.3 }).apply(tf.layers.dense({ units: 12, activation: 'tanh' }).apply(joined)) as SymbolicTensor;
    const soft = tf.layers.dense({ units: 4, activation: 'softmax', name: 'head_kind' }).apply(h) as SymbolicTensor;
    const sig = tf.layers.dense({ units: 3, activation: 'sigmoid', name: 'head_tags' }).apply(h) as SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: [soft, sig] });
    model.compile({ optimizer: 'adam', loss: ['categoricalCrossentropy', 'binaryCrossentropy'] });
    const n = 8;
    const xs = tf.tensor4d(
      seeded(n * 16 * 16 * 3, 7).map((v) => (v + 1) * 127),
      [n, 16, 16, 3],
    );
    await model.fit(xs, [tf.oneHot(tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3], 'int32'), 4), tf.ones([n, 3])], { epochs: 2, batchSize: 4, verbose: 0 });

    // Act
    const bytes = exportLayersModelToOnnx(model, {
      outputs: [
        { name: 'kind', layer: 'head_kind' },
        { name: 'tags', layer: 'head_tags' },
      ],
    });
    const got = await runOnnx(bytes, { image: { data: xs.dataSync() as Float32Array, dims: [n, 16, 16, 3] } });
    const want = (model.predict(xs) as Tensor[]).map((t) => t.dataSync() as Float32Array);

    // Assess
    expect(relativeMaxDiff(want[0], got.kind)).toBeLessThan(1e-3);
    expect(relativeMaxDiff(want[1], got.tags)).toBeLessThan(1e-3);
    expect(argmaxRows(got.kind, 4)).toEqual(argmaxRows(want[0], 4));
    model.dispose();
  });

  it('exports a trained head model (vector input, hard-shared trunk, classification and regression) that agrees with tfjs', async () => {
    // Prepare
    const heads = await buildHeadModel({
      embeddingSize: 20,
      tasks: [
        { name: 'species', type: 'classification', labels: ['a', 'b', 'c'] },
        { name: 'size', type: 'regression', size: 1 },
      ] as never,
      sharing: { method: 'hard', trunk: [16] } as never,
    });
    heads.compile({ optimizer: 'adam', loss: ['categoricalCrossentropy', 'meanSquaredError'] });
    const n = 12;
    const xs = tf.tensor2d(seeded(n * 20, 11), [n, 20]);
    await heads.fit(
      xs,
      [
        tf.oneHot(
          tf.tensor1d(
            Array.from({ length: n }, (_, i) => i % 3),
            'int32',
          ),
          3,
        ),
        tf.randomNormal([n, 1], 0, 1, 'float32', 3),
      ],
      { epochs: 3, verbose: 0 },
    );

    // Act
    const bytes = exportLayersModelToOnnx(heads, {
      outputs: [
        { name: 'species', layer: 'head_species' },
        { name: 'size', layer: 'head_size' },
      ],
    });
    const got = await runOnnx(bytes, { features: { data: xs.dataSync() as Float32Array, dims: [n, 20] } });
    const want = (heads.predict(xs) as Tensor[]).map((t) => t.dataSync() as Float32Array);

    // Assess
    expect(relativeMaxDiff(want[0], got.species)).toBeLessThan(1e-3);
    expect(relativeMaxDiff(want[1], got.size)).toBeLessThan(1e-3);
    heads.dispose();
  });

  it('names the layer it cannot export, and a base with such a layer keeps tfjs with one log line', async () => {
    // Prepare: a stored base with an UpSampling2D layer, which the exporter does not map
    const input = tf.input({ shape: [8, 8, 3] });
    const up = tf.layers.upSampling2d({ size: [2, 2], name: 'odd_upsample' }).apply(input) as SymbolicTensor;
    const out = tf.layers.globalAveragePooling2d({ name: 'odd_pool' }).apply(tf.layers.conv2d({ filters: 4, kernelSize: 3 }).apply(up)) as SymbolicTensor;
    const model: LayersModel = tf.model({ inputs: input, outputs: out });
    await model.save(objectStoreIO(store, 'base-models/odd'));
    await store.put(
      descriptorKey('odd'),
      JSON.stringify({
        name: 'odd',
        inputShape: [8, 8, 3],
        normalization: { scale: 1 / 255, offset: 0 },
        embedding: { layer: 'odd_pool', pooling: 'none', size: 4 },
        modelKey: 'base-models/odd/model.json',
        provenance: { source: 'test' },
      }),
    );
    lines.length = 0;
    configureEngine({ engine: 'onnx', threads: 1, log });

    // Act
    const exportError = (() => {
      try {
        exportLayersModelToOnnx(model, { outputs: [{ name: 'e', layer: 'odd_pool' }] });
      } catch (err) {
        return err;
      }
    })();
    const base = await resolveBase(store, 'odd');
    const embedder = await loadEmbedder(store, base);
    await loadEmbedder(store, base);
    const e = await embedder.embed(new Uint8Array(2 * 8 * 8 * 3).fill(100), 2);

    // Assess
    expect(exportError).toBeInstanceOf(UnsupportedLayerError);
    expect((exportError as Error).message).toContain('"odd_upsample" (UpSampling2D)');
    expect(embedder.engine).toBe('tfjs');
    expect(e).toHaveLength(8);
    expect(lines.filter((l) => l.includes('base odd keeps tfjs'))).toHaveLength(1);
    expect(lines.find((l) => l.includes('keeps tfjs'))).toContain('odd_upsample');
    model.dispose();
  });

  it('falls back to tfjs with one clear log line when onnxruntime-node cannot load, and fails loudly when onnx is forced', async () => {
    // Prepare
    const broken = () => Promise.reject(new Error('libonnxruntime.so.1: cannot open shared object file'));
    const base = await resolveBase(store, 'mobilenet_v2');
    lines.length = 0;

    // Act
    configureEngine({ engine: 'auto', importRuntime: broken, log });
    const embedder = await loadEmbedder(store, base);
    const again = await frozenEngine();
    configureEngine({ engine: 'onnx', importRuntime: broken, log });
    const forced = frozenEngine();

    // Assess
    expect(embedder.engine).toBe('tfjs');
    expect(again.engine).toBe('tfjs');
    expect(lines).toEqual(['frozen base engine: tfjs (onnxruntime-node cannot load: libonnxruntime.so.1: cannot open shared object file)']);
    await expect(forced).rejects.toThrow(EngineUnavailableError);
    embedder.dispose();
  });
});
