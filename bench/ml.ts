/**
 * Benchmarks of the ML core. Each exported function returns plain JSON figures;
 * the bench harness calls them, and `node --import tsx bench/ml.ts` runs them alone.
 *
 * Data: Fashion-MNIST from the Debian package `dataset-fashion-mnist` (IDX files);
 * figures that need it are skipped (with a reason) when it is not installed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { FsObjectStore } from '../shared/adapters/local/fs-object-store.js';
import type { ObjectStore } from '../shared/ports/object-store.js';
import { loadTf } from '../shared/tf/loader.js';
import { resolveBase } from '../shared/ml/base-models.js';
import { loadEmbedder, type Embedder } from '../shared/ml/embedder.js';
import { buildHeadModel } from '../shared/ml/architectures.js';
import { trainModel } from '../shared/ml/train.js';
import { classificationMetrics } from '../shared/ml/metrics.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle-boot'];

export interface ImageSet {
  /** count×28×28×1 uint8 */
  pixels: Uint8Array;
  labels: Uint8Array;
  count: number;
  shape: [number, number, number];
}

/**
 * Finds Fashion-MNIST, or installs Debian's `dataset-fashion-mnist` when this
 * process may (root, apt-get present). Returns whether the IDX files are there.
 */
export function ensureFashionMnist(log: (line: string) => void = () => {}, dir = FASHION_MNIST_DIR): boolean {
  const file = path.join(dir, 'train-images-idx3-ubyte.gz');
  if (existsSync(file)) return true;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    log(`Fashion-MNIST not found in ${dir}: run "apt-get install dataset-fashion-mnist" as root`);
    return false;
  }
  log('Fashion-MNIST not found: installing the Debian package dataset-fashion-mnist...');
  const install = () =>
    spawnSync('apt-get', ['install', '-y', '-q', 'dataset-fashion-mnist'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
      .status === 0;
  // A fresh machine may have no package lists yet.
  if (!install()) {
    spawnSync('apt-get', ['update', '-q'], { stdio: 'ignore' });
    install();
  }
  if (!existsSync(file)) log(`installing dataset-fashion-mnist did not provide ${file}`);
  return existsSync(file);
}

/** Reads a Fashion-MNIST split from its gzipped IDX files. */
export async function loadFashionMnist(split: 'train' | 't10k', dir = FASHION_MNIST_DIR): Promise<ImageSet> {
  const images = gunzipSync(await readFile(path.join(dir, `${split}-images-idx3-ubyte.gz`)));
  const labels = gunzipSync(await readFile(path.join(dir, `${split}-labels-idx1-ubyte.gz`)));
  if (images.readUInt32BE(0) !== 2051 || labels.readUInt32BE(0) !== 2049) throw new Error('not IDX image/label files');
  const count = images.readUInt32BE(4);
  const h = images.readUInt32BE(8);
  const w = images.readUInt32BE(12);
  return { pixels: new Uint8Array(images.subarray(16)), labels: new Uint8Array(labels.subarray(8)), count, shape: [h, w, 1] };
}

/** The first `perClass` images of each class, in a deterministic order. */
export function takePerClass(set: ImageSet, perClass: number, skip = 0): ImageSet {
  const per = set.shape[0] * set.shape[1] * set.shape[2];
  const seen = new Map<number, number>();
  const idx: number[] = [];
  for (let i = 0; i < set.count; i++) {
    const c = set.labels[i];
    const k = seen.get(c) ?? 0;
    seen.set(c, k + 1);
    if (k >= skip && k < skip + perClass) idx.push(i);
  }
  const pixels = new Uint8Array(idx.length * per);
  idx.forEach((j, n) => pixels.set(set.pixels.subarray(j * per, (j + 1) * per), n * per));
  return { pixels, labels: Uint8Array.from(idx.map((j) => set.labels[j])), count: idx.length, shape: set.shape };
}

export async function withStore<T>(fn: (store: ObjectStore) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tl-bench-ml-'));
  try {
    return await fn(new FsObjectStore({ root: dir }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/** Nearest class mean with cosine similarity: the few-shot baseline, no training. */
export function nearestMeanAccuracy(
  train: Float32Array,
  trainLabels: ArrayLike<number>,
  test: Float32Array,
  testLabels: ArrayLike<number>,
  size: number,
  classes: number,
): number {
  const unit = (v: Float32Array) => {
    const n = Math.hypot(...v) || 1;
    return v.map((x) => x / n);
  };
  const means = Array.from({ length: classes }, () => new Float32Array(size));
  for (let i = 0; i < trainLabels.length; i++) {
    const u = unit(train.subarray(i * size, (i + 1) * size));
    const m = means[trainLabels[i]];
    for (let j = 0; j < size; j++) m[j] += u[j];
  }
  const units = means.map(unit);
  let correct = 0;
  for (let i = 0; i < testLabels.length; i++) {
    const u = unit(test.subarray(i * size, (i + 1) * size));
    let best = -1;
    let bestScore = -Infinity;
    units.forEach((m, c) => {
      let s = 0;
      for (let j = 0; j < size; j++) s += m[j] * u[j];
      if (s > bestScore) [best, bestScore] = [c, s];
    });
    if (best === testLabels[i]) correct++;
  }
  return correct / testLabels.length;
}

/** Trains a softmax head (no hidden layer) on embeddings and returns test accuracy. */
export async function headAccuracy(
  train: Float32Array,
  trainLabels: Uint8Array,
  test: Float32Array,
  testLabels: Uint8Array,
  size: number,
  trunk: number[] = [],
): Promise<number> {
  const labels = FASHION_MNIST_CLASSES;
  const model = await buildHeadModel({
    embeddingSize: size,
    tasks: [{ name: 'class', type: 'classification', auxiliary: false, labels }],
    sharing: { method: 'hard', trunk },
    dropout: 0.1,
    seed: 1,
  });
  try {
    await trainModel(
      model,
      { train: { x: train, count: trainLabels.length, targets: { class: Int32Array.from(trainLabels) } } },
      { epochs: 60, batchSize: 32, learningRate: 0.003, patience: 60 },
    );
    const { predictTasks } = await import('../shared/ml/predict.js');
    const preds = await predictTasks(model, [{ name: 'class', type: 'classification', auxiliary: false, labels }], test, testLabels.length, { topK: 1 });
    const predicted = preds.map((p) => labels.indexOf((p.class as { label: string }).label));
    return classificationMetrics(Array.from(testLabels), predicted, labels).accuracy;
  } finally {
    model.dispose();
  }
}

async function timeEmbed(embedder: Embedder, set: ImageSet, batchSize: number): Promise<{ imagesPerSecond: number; embeddings: Float32Array }> {
  await embedder.embed(set.pixels.subarray(0, set.shape[0] * set.shape[1] * set.shape[2]), 1, { sourceShape: set.shape }); // warm-up
  const t = performance.now();
  const embeddings = await embedder.embed(set.pixels, set.count, { batchSize, sourceShape: set.shape });
  return { imagesPerSecond: round(set.count / ((performance.now() - t) / 1000), 2), embeddings };
}

function synthetic(count: number): ImageSet {
  const pixels = new Uint8Array(count * 224 * 224 * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
  return { pixels, labels: new Uint8Array(count), count, shape: [224, 224, 3] };
}

/**
 * Embedding throughput of the default base, on the default engine, at batch 1 and 32
 * (images already 224×224×3): the median of `rounds` passes of `images` images each,
 * since one short pass swings by 2–4× on a shared machine (see bench/engines.ts).
 */
export async function benchEmbedding(opts: { images?: number; rounds?: number } = {}) {
  const n = Math.max(32, Math.ceil((opts.images ?? 128) / 32) * 32);
  const rounds = Math.max(1, opts.rounds ?? 3);
  const { backend } = await loadTf();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return withStore(async (store) => {
    const embedder = await loadEmbedder(store, await resolveBase(store, 'mobilenet_v2'));
    try {
      const set = synthetic(n);
      const b1: number[] = [];
      const b32: number[] = [];
      for (let r = 0; r < rounds; r++) {
        b1.push((await timeEmbed(embedder, set, 1)).imagesPerSecond);
        b32.push((await timeEmbed(embedder, set, 32)).imagesPerSecond);
      }
      return {
        backend,
        engine: embedder.engine ?? 'tfjs',
        base: 'mobilenet_v2',
        images: n,
        rounds,
        statistic: 'median over rounds',
        batch1ImagesPerSecond: median(b1),
        batch32ImagesPerSecond: median(b32),
      };
    } finally {
      embedder.dispose();
    }
  });
}

/** Time to train a default head (trunk [128], 10 classes) on N cached 1280-d embeddings. */
export async function benchHeadTraining(opts: { records?: number; epochs?: number } = {}) {
  const n = opts.records ?? 1000;
  const epochs = opts.epochs ?? 10;
  const size = 1280;
  const { backend } = await loadTf();
  const x = new Float32Array(n * size);
  const targets = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    targets[i] = i % 10;
    for (let j = 0; j < size; j++) x[i * size + j] = Math.max(0, Math.sin(i * 0.37 + j * 0.11) + (j % 10 === targets[i] ? 1 : 0));
  }
  const labels = Array.from({ length: 10 }, (_, i) => `c${i}`);
  const model = await buildHeadModel({
    embeddingSize: size,
    tasks: [{ name: 'class', type: 'classification', auxiliary: false, labels }],
    sharing: { method: 'hard', trunk: [128] },
    dropout: 0.2,
    seed: 42,
  });
  try {
    const t = performance.now();
    const result = await trainModel(
      model,
      { train: { x, count: n, targets: { class: targets } } },
      { epochs, batchSize: 32, learningRate: 0.001, patience: epochs },
    );
    const seconds = (performance.now() - t) / 1000;
    return {
      backend,
      records: n,
      embeddingSize: size,
      epochs: result.epochsRun,
      seconds: round(seconds, 2),
      msPerEpoch: round((seconds * 1000) / result.epochsRun, 1),
    };
  } finally {
    model.dispose();
  }
}

export const EMBEDDING_LAYER_CANDIDATES = [
  { layer: 'flatten_1', pooling: 'none' as const },
  { layer: 'block_13_expand_relu', pooling: 'avg' as const },
  { layer: 'block_16_project', pooling: 'avg' as const },
];

/**
 * Which cut of MobileNetV2 serves best: nearest-class-mean and softmax-head test
 * accuracy on Fashion-MNIST (few labelled images per class) per candidate layer,
 * with its embedding speed, and raw pixels (base `none`) as the floor.
 */
export async function benchEmbeddingLayers(opts: { trainPerClass?: number; testPerClass?: number } = {}) {
  const trainPerClass = opts.trainPerClass ?? 20;
  const testPerClass = opts.testPerClass ?? 20;
  const { backend } = await loadTf();
  if (!existsSync(path.join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'))) {
    return { backend, skipped: `Fashion-MNIST not found in ${FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)` };
  }
  const all = await loadFashionMnist('train');
  const train = takePerClass(all, trainPerClass);
  const test = takePerClass(all, testPerClass, trainPerClass);
  return withStore(async (store) => {
    const rows: Array<Record<string, unknown>> = [];
    const evaluate = async (name: string, embedder: Embedder) => {
      try {
        const tr = await timeEmbed(embedder, train, 32);
        const te = await timeEmbed(embedder, test, 32);
        rows.push({
          layer: name,
          size: embedder.size,
          imagesPerSecond: round((tr.imagesPerSecond + te.imagesPerSecond) / 2, 2),
          nearestMeanAccuracy: round(nearestMeanAccuracy(tr.embeddings, train.labels, te.embeddings, test.labels, embedder.size, 10)),
          softmaxHeadAccuracy: round(await headAccuracy(tr.embeddings, train.labels, te.embeddings, test.labels, embedder.size)),
          zeroFraction: round(tr.embeddings.filter((v) => v === 0).length / tr.embeddings.length),
        });
      } finally {
        embedder.dispose();
      }
    };
    const base = await resolveBase(store, 'mobilenet_v2');
    for (const c of EMBEDDING_LAYER_CANDIDATES)
      await evaluate(`${c.layer}${c.pooling === 'avg' ? ' (avg pooled)' : ''}`, await loadEmbedder(store, base, { embedding: c }));
    await evaluate('none (28×28 pixels)', await loadEmbedder(store, { kind: 'none', name: 'none', inputShape: [28, 28, 1] }));
    return { backend, dataset: 'fashion-mnist', trainImages: train.count, testImages: test.count, rows };
  });
}

async function main(): Promise<void> {
  const { backend, packageName } = await loadTf();
  const out: Record<string, unknown> = { backend, packageName };
  out.embedding = await benchEmbedding();
  process.stderr.write(`${JSON.stringify(out.embedding)}\n`);
  out.headTraining = await benchHeadTraining();
  process.stderr.write(`${JSON.stringify(out.headTraining)}\n`);
  out.embeddingLayers = await benchEmbeddingLayers();
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
