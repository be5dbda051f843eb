/**
 * Does transfer pay? Fashion-MNIST, a source model trained on classes 0–4, and
 * target classes 5–9 with 1, 5, 10 and 50 labelled images per class. Test
 * accuracy (100 test images per target class, from the t10k file) of:
 * - from scratch: the job's baseline (dense network on 32×32 pixels);
 * - source model, head only: a softmax head on the source's frozen trunk;
 * - source model, fine-tuned: the same, then the trunk unfrozen at a lower rate;
 * - source model, prototypes: nearest class mean on the trunk's features;
 * and the same three with the default pretrained base (mobilenet_v2, flatten_1;
 * fine-tuning unfreezes Conv_1, its top conv layer, on cached cut activations).
 * k ≤ 10 is averaged over 3 disjoint draws of the labelled images.
 *
 * Embeddings are computed once per run and kept under bench/.cache/ (an object
 * store there, through the platform's embedding cache), so a rerun skips them.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { LayersModel } from '@tensorflow/tfjs';
import sharp from 'sharp';
import { FsObjectStore } from '../shared/adapters/local/fs-object-store.js';
import { resolveBase } from '../shared/ml/base-models.js';
import { accuracyOf, fitBaseline } from '../shared/ml/baseline.js';
import { embedCached, embeddingKeyFor, lazyEmbedder } from '../shared/ml/embedding-cache.js';
import { loadEmbedder } from '../shared/ml/embedder.js';
import { buildFineTuneModel, buildTopFeatureModel, loadBaseGraph, planFineTune } from '../shared/ml/fine-tune.js';
import { predictOutputs } from '../shared/ml/inference.js';
import { buildHeadModel } from '../shared/ml/architectures.js';
import { buildPrototypes, prototypeScores } from '../shared/ml/prototype-classifier.js';
import { trainModel } from '../shared/ml/train.js';
import type { TaskHead } from '../shared/schemas/model.js';
import { loadTf } from '../shared/tf/loader.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, loadFashionMnist, type ImageSet } from './ml.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export const SHOTS = [1, 5, 10, 50];
const SOURCE_CLASSES = [0, 1, 2, 3, 4];
const TARGET_CLASSES = [5, 6, 7, 8, 9];

export interface TransferBenchOptions {
  /** Source images per class (classes 0–4). @default 500 */
  sourcePerClass?: number;
  /** Target test images per class. @default 100 */
  testPerClass?: number;
  /** Draws averaged for k ≤ 10. @default 3 */
  draws?: number;
  /** Skip mobilenet_v2 (minutes of embedding on wasm). @default false */
  skipPretrained?: boolean;
  log?: (line: string) => void;
}

/** Images of the given classes, `perClass` of each after skipping `skip`, labels remapped to 0..n-1. */
function pick(set: ImageSet, classes: number[], perClass: number, skip = 0): ImageSet {
  const per = set.shape[0] * set.shape[1] * set.shape[2];
  const seen = new Map<number, number>();
  const idx: number[] = [];
  for (let i = 0; i < set.count; i++) {
    const c = classes.indexOf(set.labels[i]);
    if (c < 0) continue;
    const k = seen.get(c) ?? 0;
    seen.set(c, k + 1);
    if (k >= skip && k < skip + perClass) idx.push(i);
  }
  const pixels = new Uint8Array(idx.length * per);
  idx.forEach((j, n) => pixels.set(set.pixels.subarray(j * per, (j + 1) * per), n * per));
  return { pixels, labels: Uint8Array.from(idx, (j) => classes.indexOf(set.labels[j])), count: idx.length, shape: set.shape };
}

/** Rows of a count×size array at `index`. */
const rows = (x: Float32Array, size: number, index: number[]) => {
  const out = new Float32Array(index.length * size);
  index.forEach((j, n) => out.set(x.subarray(j * size, (j + 1) * size), n * size));
  return out;
};

const task = (labels: string[]): TaskHead => ({ name: 'class', type: 'classification', auxiliary: false, labels });

/** Trains a head on features (no validation: with 1 image per class there is none), returns it. */
async function trainHead(x: Float32Array, labels: ArrayLike<number>, size: number, head: TaskHead, trunk: number[] = []): Promise<LayersModel> {
  const model = await buildHeadModel({ embeddingSize: size, tasks: [head], sharing: { method: 'hard', trunk }, dropout: 0.1, seed: 7 });
  await trainModel(
    model,
    { train: { x, count: labels.length, targets: { class: Int32Array.from(labels) } } },
    { epochs: 60, batchSize: 16, learningRate: 0.003, patience: 60, taskTypes: { class: 'classification' } },
  );
  return model;
}

async function accuracy(model: LayersModel, x: Float32Array, labels: Uint8Array, k: number): Promise<number> {
  return accuracyOf((await predictOutputs(model, x, labels.length))[0], labels, labels.length, k).accuracy;
}

function prototypeAccuracy(train: Float32Array, trainLabels: ArrayLike<number>, test: Float32Array, testLabels: Uint8Array, size: number, k: number): number {
  const { prototypes } = buildPrototypes(train, trainLabels.length, size, trainLabels, k);
  return accuracyOf(prototypeScores(test, testLabels.length, size, prototypes, k), testLabels, testLabels.length, k).accuracy;
}

interface FeatureSet {
  /** Features the heads read, for the pool of labelled images and the test images. */
  pool: Float32Array;
  test: Float32Array;
  size: number;
  /** Fine-tuning: inputs of the top part (cut activations) and the model parts. */
  cutPool: Float32Array;
  cutTest: Float32Array;
  graph: LayersModel;
  plan: ReturnType<typeof planFineTune>;
  embeddingLayer: string;
  pooling: 'none' | 'avg';
  learningRate: number;
  epochs: number;
}

/** Head only, fine-tuned and prototype accuracy for one draw of labelled images. */
async function methodsOn(f: FeatureSet, index: number[], labels: Uint8Array, testLabels: Uint8Array, names: string[]) {
  const head = task(names);
  const k = names.length;
  const x = rows(f.pool, f.size, index);
  const model = await trainHead(x, labels, f.size, head);
  try {
    const headOnly = await accuracy(model, f.test, testLabels, k);
    const ft = await buildFineTuneModel({ graph: f.graph, plan: f.plan, embeddingLayer: f.embeddingLayer, pooling: f.pooling, heads: model });
    let fineTuned: number;
    try {
      await trainModel(
        ft,
        { train: { x: rows(f.cutPool, (f.cutPool.length / f.pool.length) * f.size, index), count: index.length, targets: { class: Int32Array.from(labels) } } },
        { epochs: f.epochs, learningRate: f.learningRate, batchSize: 16, patience: f.epochs, tasks: [head], inferenceMode: true },
      );
      fineTuned = await accuracy(ft, f.cutTest, testLabels, k);
    } finally {
      ft.dispose();
    }
    return { headOnly, fineTuned, prototype: prototypeAccuracy(x, labels, f.test, testLabels, f.size, k) };
  } finally {
    model.dispose();
  }
}

/** MobileNetV2 features of the pool and the test images, cut below Conv_1 (one pass gives the cut activations; its top gives flatten_1). */
async function pretrainedFeatures(
  store: FsObjectStore,
  pool: ImageSet,
  test: ImageSet,
  log: (line: string) => void,
): Promise<{ pretrained: FeatureSet; cacheOutcome?: string }> {
  const shape = pool.shape;
  let cacheOutcome: string | undefined;
  const base = await resolveBase(store, 'mobilenet_v2');
  const g = await loadBaseGraph(store, base);
  const plan = planFineTune(g.graph, g.embeddingLayer, 1);
  const cut = { layer: plan.cutLayer, pooling: 'none' as const };
  const lazy = lazyEmbedder(() => loadEmbedder(store, base, { embedding: cut }));
  const t0 = performance.now();
  const embed = async (s: ImageSet, what: string) => {
    const r = await embedCached({
      store,
      baseKey: await embeddingKeyFor(store, base, cut),
      pixels: s.pixels,
      count: s.count,
      shape,
      embedder: lazy.get,
      onProgress: (d, t) => d % 64 < 8 && log(`transfer: mobilenet_v2 ${what} ${d}/${t}`),
    });
    cacheOutcome = r.cache;
    return r.x;
  };
  const [cutPool, cutTest] = [await embed(pool, 'pool'), await embed(test, 'test')];
  lazy.dispose();
  log(
    `transfer: mobilenet_v2 cut activations (${plan.cutLayer}) ${cacheOutcome === 'hit' ? 'from the cache' : `in ${round((performance.now() - t0) / 1000, 1)} s`}`,
  );
  const top = await buildTopFeatureModel({ graph: g.graph, plan, embeddingLayer: g.embeddingLayer, pooling: g.pooling });
  const pretrained: FeatureSet = {
    pool: (await predictOutputs(top, cutPool, pool.count))[0],
    test: (await predictOutputs(top, cutTest, test.count))[0],
    size: top.outputs[0].shape[1] as number,
    cutPool,
    cutTest,
    graph: g.graph,
    plan,
    embeddingLayer: g.embeddingLayer,
    pooling: g.pooling,
    learningRate: 0.0001,
    epochs: 5,
  };
  top.dispose();
  return { pretrained, cacheOutcome };
}

/** Runs the benchmark; returns the table (accuracy per method and k) and where the chart went. */
export async function benchTransfer(opts: TransferBenchOptions = {}) {
  const log = opts.log ?? (() => {});
  const { backend } = await loadTf();
  if (!existsSync(path.join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'))) return { backend, skipped: `Fashion-MNIST not found in ${FASHION_MNIST_DIR}` };
  const draws = opts.draws ?? 3;
  const testPerClass = opts.testPerClass ?? 100;
  const poolPerClass = Math.max(50, 10 * draws);
  const [trainSet, testSet] = [await loadFashionMnist('train'), await loadFashionMnist('t10k')];
  const names = TARGET_CLASSES.map((c) => FASHION_MNIST_CLASSES[c]);
  const pool = pick(trainSet, TARGET_CLASSES, poolPerClass);
  const test = pick(testSet, TARGET_CLASSES, testPerClass);
  const source = pick(trainSet, SOURCE_CLASSES, opts.sourcePerClass ?? 500);
  const shape = trainSet.shape;
  const store = new FsObjectStore({ root: path.join(here, '.cache', 'store') });
  const started = performance.now();

  // Which pool images form draw d with k per class: the d-th block of k of each class.
  const drawIndex = (k: number, d: number) => {
    const out: number[] = [];
    const seen = new Map<number, number>();
    for (let i = 0; i < pool.count; i++) {
      const c = pool.labels[i];
      const n = seen.get(c) ?? 0;
      seen.set(c, n + 1);
      if (n >= d * k && n < (d + 1) * k) out.push(i);
    }
    return out;
  };
  const drawsFor = (k: number) => (k * draws <= poolPerClass && k <= 10 ? draws : 1);

  // The source model: trained on classes 0–4 from pixels (base none), trunk of 128.
  log('transfer: training the source model on classes 0–4...');
  const pixelEmbedder = await loadEmbedder(store, { kind: 'none', name: 'none', inputShape: shape });
  const px = (s: ImageSet) => pixelEmbedder.embed(s.pixels, s.count);
  const [sourceX, poolX, testX] = [await px(source), await px(pool), await px(test)];
  const sourceModel = await trainHead(sourceX, source.labels, pixelEmbedder.size, task(SOURCE_CLASSES.map((c) => FASHION_MNIST_CLASSES[c])), [128]);
  // Shares its layers with sourceModel: disposing sourceModel frees both.
  const sourceFeatures = (await loadTf()).tf.model({ inputs: sourceModel.inputs, outputs: sourceModel.getLayer('trunk_0').output });
  const sourceSet: FeatureSet = {
    pool: (await predictOutputs(sourceFeatures, poolX, pool.count))[0],
    test: (await predictOutputs(sourceFeatures, testX, test.count))[0],
    size: 128,
    cutPool: poolX,
    cutTest: testX,
    graph: sourceModel,
    plan: planFineTune(sourceModel, 'trunk_0', 1),
    embeddingLayer: 'trunk_0',
    pooling: 'none',
    learningRate: 0.001,
    epochs: 20,
  };

  // The pretrained base, cut below Conv_1 (one pass gives the cut activations; its top gives flatten_1).
  const { pretrained, cacheOutcome } = opts.skipPretrained
    ? { pretrained: undefined, cacheOutcome: undefined }
    : await pretrainedFeatures(store, pool, test, log);

  const rowsOut: Array<Record<string, number>> = [];
  for (const k of SHOTS) {
    const acc: Record<string, number[]> = {};
    const add = (name: string, v: number) => (acc[name] ??= []).push(v);
    for (let d = 0; d < drawsFor(k); d++) {
      const index = drawIndex(k, d);
      const labels = Uint8Array.from(index, (i) => pool.labels[i]);
      const sel = pick({ ...pool, pixels: pool.pixels, labels: pool.labels }, [0, 1, 2, 3, 4], k, d * k);
      const scratch = await fitBaseline({
        store,
        splits: {
          train: { pixels: sel.pixels, count: sel.count, targets: { class: Int32Array.from(sel.labels) } },
          validation: { pixels: new Uint8Array(0), count: 0, targets: { class: new Int32Array(0) } },
          test: { pixels: test.pixels, count: test.count, targets: { class: Int32Array.from(test.labels) } },
        },
        sourceShape: shape,
        heads: [task(names)],
        epochs: 60,
      });
      const scratchClass = scratch!.test.class;
      add('scratch', 'accuracy' in scratchClass ? scratchClass.accuracy : NaN);
      const s = await methodsOn(sourceSet, index, labels, test.labels, names);
      add('sourceHeadOnly', s.headOnly);
      add('sourceFineTuned', s.fineTuned);
      add('sourcePrototype', s.prototype);
      if (pretrained) {
        const p = await methodsOn(pretrained, index, labels, test.labels, names);
        add('mobilenetHeadOnly', p.headOnly);
        add('mobilenetFineTuned', p.fineTuned);
        add('mobilenetPrototype', p.prototype);
      }
    }
    const row = { imagesPerClass: k, draws: drawsFor(k), ...Object.fromEntries(Object.entries(acc).map(([m, v]) => [m, round(mean(v))])) };
    rowsOut.push(row);
    log(`transfer: k=${k} ${JSON.stringify(row)}`);
  }
  sourceModel.dispose();
  pixelEmbedder.dispose();
  pretrained?.graph.dispose();

  const chart = path.join(here, 'results', 'transfer-curves.png');
  await mkdir(path.dirname(chart), { recursive: true });
  await writeFile(chart, await renderCurves(rowsOut));
  return {
    backend,
    dataset: 'fashion-mnist',
    source: { classes: SOURCE_CLASSES.map((c) => FASHION_MNIST_CLASSES[c]), imagesPerClass: opts.sourcePerClass ?? 500, model: 'dense 128 on 28×28 pixels' },
    target: { classes: names, testImagesPerClass: testPerClass },
    pretrained: pretrained
      ? { base: 'mobilenet_v2', embedding: 'flatten_1', fineTuned: pretrained.plan.trainable, cut: pretrained.plan.cutLayer, embeddingCache: cacheOutcome }
      : 'skipped',
    table: rowsOut,
    chart: path.relative(process.cwd(), chart),
    seconds: round((performance.now() - started) / 1000, 1),
  };
}

const SERIES: Array<{ key: string; label: string; color: string; dash?: string }> = [
  { key: 'scratch', label: 'from scratch (32×32 pixels)', color: '#444444' },
  { key: 'sourceHeadOnly', label: 'source model, head only', color: '#1f77b4' },
  { key: 'sourceFineTuned', label: 'source model, fine-tuned', color: '#2ca02c' },
  { key: 'sourcePrototype', label: 'source model, prototypes', color: '#d62728' },
  { key: 'mobilenetHeadOnly', label: 'mobilenet_v2, head only', color: '#1f77b4', dash: '6 4' },
  { key: 'mobilenetFineTuned', label: 'mobilenet_v2, fine-tuned', color: '#2ca02c', dash: '6 4' },
  { key: 'mobilenetPrototype', label: 'mobilenet_v2, prototypes', color: '#d62728', dash: '6 4' },
];

/** The table as aligned text, one row per images-per-class figure. */
export function transferTable(table: Array<Record<string, number>>): string {
  const cols = ['imagesPerClass', ...SERIES.map((s) => s.key).filter((k) => table.some((r) => k in r))];
  const width = cols.map((c) => Math.max(c.length, 6));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(width[i])).join('  ');
  return [line(cols), ...table.map((r) => line(cols.map((c) => (c === 'imagesPerClass' ? String(r[c]) : (r[c]?.toFixed(3) ?? '-')))))].join('\n');
}

/** Learning curves (test accuracy vs labelled images per class, log scale) as a PNG drawn from SVG. */
export async function renderCurves(table: Array<Record<string, number>>): Promise<Buffer> {
  const W = 900;
  const H = 560;
  const m = { l: 70, r: 290, t: 50, b: 60 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const xs = table.map((r) => r.imagesPerClass);
  const lx = (k: number) => m.l + (pw * (Math.log(k) - Math.log(xs[0]))) / (Math.log(xs.at(-1)!) - Math.log(xs[0]) || 1);
  const ly = (a: number) => m.t + ph * (1 - a);
  const parts: string[] = [];
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${m.l}" y="28" font-size="18" font-family="sans-serif">Fashion-MNIST classes 5–9: test accuracy vs labelled images per class</text>`);
  for (let a = 0; a <= 1.0001; a += 0.1) {
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${ly(a)}" y2="${ly(a)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.l - 8}" y="${ly(a) + 4}" font-size="12" text-anchor="end" font-family="sans-serif">${a.toFixed(1)}</text>`);
  }
  for (const k of xs) {
    parts.push(`<line x1="${lx(k)}" x2="${lx(k)}" y1="${m.t}" y2="${m.t + ph}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${lx(k)}" y="${m.t + ph + 20}" font-size="12" text-anchor="middle" font-family="sans-serif">${k}</text>`);
  }
  parts.push(
    `<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + ph}" stroke="black"/><line x1="${m.l}" x2="${m.l + pw}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="black"/>`,
  );
  parts.push(
    `<text x="${m.l + pw / 2}" y="${H - 18}" font-size="14" text-anchor="middle" font-family="sans-serif">labelled images per class (log scale)</text>`,
  );
  parts.push(
    `<text x="18" y="${m.t + ph / 2}" font-size="14" text-anchor="middle" font-family="sans-serif" transform="rotate(-90 18 ${m.t + ph / 2})">test accuracy</text>`,
  );
  let legendY = m.t + 10;
  for (const s of SERIES) {
    const pts = table.filter((r) => typeof r[s.key] === 'number').map((r) => `${lx(r.imagesPerClass).toFixed(1)},${ly(r[s.key]).toFixed(1)}`);
    if (!pts.length) continue;
    parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    for (const p of pts) parts.push(`<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="3.5" fill="${s.color}"/>`);
    parts.push(
      `<line x1="${W - m.r + 20}" x2="${W - m.r + 55}" y1="${legendY}" y2="${legendY}" stroke="${s.color}" stroke-width="2.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
    );
    parts.push(`<text x="${W - m.r + 62}" y="${legendY + 4}" font-size="13" font-family="sans-serif">${s.label}</text>`);
    legendY += 24;
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join('')}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  benchTransfer({ log: (l) => process.stderr.write(`${l}\n`), skipPretrained: process.argv.includes('--no-pretrained') })
    .then((r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`))
    .catch((err) => {
      process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    });
}
