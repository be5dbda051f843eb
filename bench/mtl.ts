/**
 * Multi-task benchmark on Fashion-MNIST: the 10-class label and a coarse label
 * (tops, bottoms, footwear, bags) as two tasks, at 10, 50 and 500 training images
 * per class; test accuracy of single-task heads vs hard vs soft parameter sharing,
 * on MobileNetV2 embeddings and on raw pixels (base `none`).
 *
 * Each image goes through the frozen base once per run and every configuration
 * reuses those embeddings; they are also cached on disk under bench/.cache/ so a
 * rerun skips the ~10 minutes MobileNetV2 takes on wasm.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FsObjectStore } from '../shared/adapters/local/fs-object-store.js';
import { resolveBase } from '../shared/ml/base-models.js';
import { loadEmbedder, type Embedder } from '../shared/ml/embedder.js';
import { buildHeadModel } from '../shared/ml/architectures.js';
import { evaluateTasks } from '../shared/ml/mtl-evaluate.js';
import type { Split } from '../shared/ml/split.js';
import { trainModel, type TrainData } from '../shared/ml/train.js';
import type { TaskHead } from '../shared/schemas/model.js';
import { TrainingOptionsSchema, type Sharing } from '../shared/schemas/spec.js';
import { loadTf } from '../shared/tf/loader.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, loadFashionMnist, takePerClass, type ImageSet } from './ml.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const MTL_CACHE_DIR = path.join(here, '.cache');

/** Fashion-MNIST class → coarse group. */
export const COARSE_OF: Record<string, string> = {
  't-shirt': 'tops',
  pullover: 'tops',
  dress: 'tops',
  coat: 'tops',
  shirt: 'tops',
  trouser: 'bottoms',
  sandal: 'footwear',
  sneaker: 'footwear',
  'ankle-boot': 'footwear',
  bag: 'bags',
};
export const COARSE_CLASSES = ['bags', 'bottoms', 'footwear', 'tops'];

export type MtlBase = 'mobilenet_v2' | 'none';

export interface EmbeddedSet {
  x: Float32Array;
  size: number;
  count: number;
  /** Fine class index per record (FASHION_MNIST_CLASSES order). */
  labels: Uint8Array;
}

/** The data the benchmark uses: the first N per class of `train` for training, the next ones for validation, t10k for test. */
export interface MtlSplitsOptions {
  /** Largest training size per class; smaller sizes take the first images of it. @default 500 */
  maxTrainPerClass?: number;
  /** @default 30 */
  validationPerClass?: number;
  /** @default 100 */
  testPerClass?: number;
}

type EmbedderSource = () => Promise<{ embed: (set: ImageSet) => Promise<Float32Array>; size: number }>;

async function embedCached(base: MtlBase, name: string, set: ImageSet, source: EmbedderSource, log: (l: string) => void): Promise<EmbeddedSet> {
  const file = path.join(MTL_CACHE_DIR, `fashion-mnist-${base}-${name}-${set.count}.f32`);
  if (base !== 'none' && existsSync(file)) {
    const buf = await readFile(file);
    const x = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    if (x.length % set.count === 0) return { x, size: x.length / set.count, count: set.count, labels: set.labels };
  }
  const t = performance.now();
  const embedder = await source();
  log(`mtl: embedding ${set.count} ${name} images with ${base}...`);
  const x = await embedder.embed(set);
  log(`mtl: embedded ${set.count} ${name} images with ${base} at ${((set.count / (performance.now() - t)) * 1000).toFixed(1)} images/s`);
  if (base !== 'none') {
    await mkdir(MTL_CACHE_DIR, { recursive: true });
    await writeFile(file, new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  }
  return { x, size: embedder.size, count: set.count, labels: set.labels };
}

/** Embeds (or reads from the cache) the train, validation and test images once. */
export async function embedFashionSplits(base: MtlBase, opts: MtlSplitsOptions = {}, log: (l: string) => void = () => {}) {
  const maxTrain = opts.maxTrainPerClass ?? 500;
  const valPer = opts.validationPerClass ?? 30;
  const testPer = opts.testPerClass ?? 100;
  const train = await loadFashionMnist('train');
  const t10k = await loadFashionMnist('t10k');
  const dir = await mkdtemp(path.join(tmpdir(), 'tl-bench-mtl-'));
  let embedder: Embedder | undefined;
  // Loaded only on a cache miss: a rerun with every split cached never touches the base.
  const source: EmbedderSource = async () => {
    if (!embedder) {
      const store = new FsObjectStore({ root: dir });
      embedder = await loadEmbedder(store, base === 'none' ? { kind: 'none', name: 'none', inputShape: train.shape } : await resolveBase(store, base));
    }
    const e = embedder;
    return {
      size: e.size,
      embed: (set) => {
        let last = 0;
        return e.embed(set.pixels, set.count, {
          sourceShape: set.shape,
          batchSize: base === 'none' ? 512 : 16,
          onProgress: (done) => {
            if (done - last >= 500) {
              last = done;
              log(`mtl: ${done}/${set.count}`);
            }
          },
        });
      },
    };
  };
  try {
    return {
      train: await embedCached(base, 'train', takePerClass(train, maxTrain), source, log),
      validation: await embedCached(base, 'validation', takePerClass(train, valPer, maxTrain), source, log),
      test: await embedCached(base, 'test', takePerClass(t10k, testPer), source, log),
    };
  } finally {
    embedder?.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

export interface BenchMultiTaskOptions {
  /** Training images per class to compare at. @default [10, 50, 500] */
  sizes?: number[];
  /** Bases to embed with. @default ["mobilenet_v2", "none"] */
  bases?: MtlBase[];
  /** Seeds averaged per size (training order and initial weights). @default 2 below 500 per class, else 1 */
  seeds?: (perClass: number) => number;
  log?: (line: string) => void;
}

type Config = 'single' | 'hard' | 'soft';

/** The first `perClass` records of each class, in order. */
function subset(set: EmbeddedSet, perClass: number): Split {
  const seen = new Map<number, number>();
  const idx: number[] = [];
  for (let i = 0; i < set.count; i++) {
    const k = seen.get(set.labels[i]) ?? 0;
    seen.set(set.labels[i], k + 1);
    if (k < perClass) idx.push(i);
  }
  return split(set, idx);
}

function split(set: EmbeddedSet, idx: number[]): Split {
  const x = new Float32Array(idx.length * set.size);
  idx.forEach((j, n) => x.set(set.x.subarray(j * set.size, (j + 1) * set.size), n * set.size));
  const fine = Int32Array.from(idx, (j) => set.labels[j]);
  const coarse = Int32Array.from(fine, (c) => COARSE_CLASSES.indexOf(COARSE_OF[FASHION_MNIST_CLASSES[c]]));
  return { x, count: idx.length, targets: { fine, coarse } };
}

const HEADS: TaskHead[] = [
  { name: 'fine', type: 'classification', auxiliary: false, labels: FASHION_MNIST_CLASSES },
  { name: 'coarse', type: 'classification', auxiliary: false, labels: COARSE_CLASSES },
];

/** Test accuracy per task of one configuration, trained with the job's default options. */
async function accuracies(config: Config, size: number, data: TrainData, test: Split, seed: number): Promise<Record<string, number>> {
  const defaults = TrainingOptionsSchema.parse({ seed });
  const sharing: Sharing = config === 'soft' ? { method: 'soft', tower: [128], l2: 0.01 } : { method: 'hard', trunk: [128] };
  const groups = config === 'single' ? HEADS.map((h) => [h]) : [HEADS];
  const out: Record<string, number> = {};
  for (const heads of groups) {
    const model = await buildHeadModel({ embeddingSize: size, tasks: heads, sharing, dropout: defaults.dropout, seed });
    try {
      await trainModel(model, data, {
        tasks: heads,
        sharing,
        epochs: defaults.epochs,
        batchSize: defaults.batchSize,
        learningRate: defaults.learningRate,
        patience: defaults.patience,
        seed,
      });
      const m = await evaluateTasks(model, heads, test);
      for (const h of heads) out[h.name] = m[h.name] && m[h.name]!.type === 'classification' ? (m[h.name] as { accuracy: number }).accuracy : Number.NaN;
    } finally {
      model.dispose();
    }
  }
  return out;
}

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * Single-task vs hard vs soft sharing on Fashion-MNIST (fine 10-class label and coarse
 * 4-group label), per base and training size: mean test accuracy over the seeds.
 */
export async function benchMultiTask(opts: BenchMultiTaskOptions = {}) {
  const log = opts.log ?? (() => {});
  const { backend } = await loadTf();
  if (!existsSync(path.join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'))) {
    return { backend, skipped: `Fashion-MNIST not found in ${FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)` };
  }
  const sizes = opts.sizes ?? [10, 50, 500];
  const seedsFor = opts.seeds ?? ((n: number) => (n >= 500 ? 1 : 2));
  const rows: Array<Record<string, unknown>> = [];
  const started = performance.now();
  for (const base of opts.bases ?? (['mobilenet_v2', 'none'] as MtlBase[])) {
    const sets = await embedFashionSplits(base, { maxTrainPerClass: Math.max(...sizes) }, log);
    const validation = subset(sets.validation, Infinity);
    const test = subset(sets.test, Infinity);
    for (const perClass of sizes) {
      const train = subset(sets.train, perClass);
      const seeds = seedsFor(perClass);
      const sum: Record<Config, Record<string, number>> = { single: { fine: 0, coarse: 0 }, hard: { fine: 0, coarse: 0 }, soft: { fine: 0, coarse: 0 } };
      const t = performance.now();
      for (let s = 0; s < seeds; s++) {
        for (const config of ['single', 'hard', 'soft'] as Config[]) {
          const acc = await accuracies(config, sets.train.size, { train, validation }, test, 42 + s);
          for (const task of ['fine', 'coarse']) sum[config][task] += acc[task] / seeds;
        }
      }
      const row = {
        base,
        perClass,
        trainImages: train.count,
        seeds,
        fine: Object.fromEntries((['single', 'hard', 'soft'] as Config[]).map((c) => [c, round(sum[c].fine)])),
        coarse: Object.fromEntries((['single', 'hard', 'soft'] as Config[]).map((c) => [c, round(sum[c].coarse)])),
        seconds: round((performance.now() - t) / 1000, 1),
      };
      rows.push(row);
      log(`mtl: ${base} ${perClass}/class: fine ${JSON.stringify(row.fine)} coarse ${JSON.stringify(row.coarse)} (${row.seconds} s)`);
    }
  }
  return {
    backend,
    dataset: 'fashion-mnist',
    tasks: { fine: '10 classes', coarse: 'tops, bottoms, footwear, bags' },
    validationImages: 10 * 30,
    testImages: 10 * 100,
    architectures: { single: 'one model per task, hidden [128]', hard: 'shared trunk [128]', soft: 'towers [128], l2 0.01' },
    training: 'job defaults: up to 100 epochs, patience 10, batch 32, Adam 0.001, dropout 0.2, static loss weights',
    rows,
    seconds: round((performance.now() - started) / 1000, 1),
  };
}

/** The table of a benchMultiTask result, one line per base and size. */
export function mtlTable(result: Awaited<ReturnType<typeof benchMultiTask>>): string {
  if ('skipped' in result && result.skipped) return result.skipped;
  const rows = 'rows' in result ? (result.rows ?? []) : [];
  const head = '| base | per class | fine: single | hard | soft | coarse: single | hard | soft |\n| --- | --- | --- | --- | --- | --- | --- | --- |';
  return [
    head,
    ...rows.map((r) => {
      const f = r.fine as Record<Config, number>;
      const c = r.coarse as Record<Config, number>;
      return `| ${String(r.base)} | ${String(r.perClass)} | ${f.single} | ${f.hard} | ${f.soft} | ${c.single} | ${c.hard} | ${c.soft} |`;
    }),
  ].join('\n');
}

async function main(): Promise<void> {
  const log = (l: string) => process.stderr.write(`${l}\n`);
  await loadTf(log);
  if (process.argv.includes('--embed-only')) {
    await embedFashionSplits('mobilenet_v2', {}, log);
    return;
  }
  const bases = process.argv.includes('--pixels-only') ? (['none'] as MtlBase[]) : undefined;
  const result = await benchMultiTask({ log, bases });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n${mtlTable(result)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
