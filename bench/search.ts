/**
 * Section `search` of `npm run bench`: does the training job's representation search
 * (shared/ml/search.ts) give what a practitioner would get by trying every candidate?
 *
 * Fashion-MNIST (Debian's dataset-fashion-mnist) at a few images per class, ≥ 2 seeds.
 * Each run writes one prepared dataset into a fresh store, as preprocessing would: the
 * labelled images split 85 / 15 into train and validation, and 1,000 held-out t10k
 * images (100 per class) as the test split, which the job uses once, for its report.
 * For each run it measures, on those 1,000 images:
 * - the default job (search on): its test accuracy, the chosen candidate, the search time;
 * - every candidate trained alone: the same job with the cut pinned (the platform's
 *   default head, search off), and base "none" for the pixels;
 * - the reference: multinomial logistic regression with L2 chosen by stratified 5-fold
 *   CV (shared/ml/logistic.ts `crossValidatedLogistic`) on each candidate's features of
 *   the same train + validation records; the best candidate's figure is the bar;
 * - the job with `search: "off"` (the embedding layer, as before the search), and each
 *   job's time, so the cost of the search is a ratio measured in the same run.
 * `--search-multitask` runs the same on fine (10) and coarse (4) labels at 30 per class.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FsObjectStore } from '../shared/adapters/local/fs-object-store.js';
import { encodeShard } from '../shared/data/shards.js';
import { accuracyOf, crossValidatedLogistic, predictLogistic } from '../shared/ml/logistic.js';
import { putJson, getJson, type ObjectStore } from '../shared/ports/object-store.js';
import type { DatasetReport, SplitName } from '../shared/schemas/report.js';
import { TrainSpecSchema, type TrainSpecInput } from '../shared/schemas/spec.js';
import type { VersionReport } from '../shared/schemas/version-report.js';
import { runTrainingJob } from '../functions/train/core.js';
import { FASHION_MNIST_CLASSES as FASHION, loadFashionMnist, takePerClass, type ImageSet } from './ml.js';
import { COARSE_CLASSES, COARSE_OF } from './mtl.js';
import { resolveBase } from '../shared/ml/base-models.js';
import { loadEmbedder } from '../shared/ml/embedder.js';
import { loadTf } from '../shared/tf/loader.js';

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const SHAPE: [number, number, number] = [28, 28, 3];

/** Grey 28×28 → RGB, as preprocessing decodes a grey PNG to sRGB. */
function toRgb(set: ImageSet): Uint8Array {
  const n = set.count * 28 * 28;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = set.pixels[i];
  return out;
}

interface Records {
  /** Images (uint8, SHAPE) or, for tabular data, float32 feature rows. */
  pixels: Uint8Array | Float32Array;
  labels: Array<Record<string, string>>;
}

const per = SHAPE[0] * SHAPE[1] * SHAPE[2];
function subset(r: Records, idx: number[], size = per): Records {
  const pixels = r.pixels instanceof Float32Array ? new Float32Array(idx.length * size) : new Uint8Array(idx.length * size);
  idx.forEach((j, n) => pixels.set(r.pixels.subarray(j * size, (j + 1) * size), n * size));
  return { pixels, labels: idx.map((j) => r.labels[j]) };
}

/** A prepared dataset as preprocessing writes it, with these splits. */
async function writePrepared(store: ObjectStore, name: string, splits: Record<SplitName, Records>, spec: TrainSpecInput) {
  const prefix = `prepared/${name}/h${name}`;
  const shards: DatasetReport['shards'] = [];
  const tasks: DatasetReport['tasks'] = {};
  for (const split of ['train', 'validation', 'test'] as SplitName[]) {
    const s = splits[split];
    const records = s.labels.map((labels, i) => ({ key: `datasets/${name}/${split}-${i}.png`, labels }));
    const key = `${prefix}/${split}-0.shard`;
    const vector = s.pixels instanceof Float32Array;
    await store.put(
      key,
      encodeShard({ split, dtype: vector ? 'float32' : 'uint8', shape: vector ? [s.pixels.length / s.labels.length] : [...SHAPE], records, data: s.pixels }),
    );
    shards.push({ key, split, count: s.labels.length });
    for (const labels of s.labels)
      for (const [task, v] of Object.entries(labels)) {
        const t = (tasks[task] ??= { type: 'classification', labelled: 0, classes: {} });
        t.labelled += 1;
        t.classes![v] = (t.classes![v] ?? 0) + 1;
      }
  }
  const total = shards.reduce((a, s) => a + s.count, 0);
  const parsed = TrainSpecSchema.parse({ model: name, ...spec });
  const report: DatasetReport = {
    dataset: name,
    hash: `h${name}`,
    layout: 'manifest',
    spec: parsed,
    inputShape: splits.train.pixels instanceof Float32Array ? [splits.train.pixels.length / splits.train.labels.length] : [...SHAPE],
    records: { total, used: total, skipped: 0 },
    splits: { train: splits.train.labels.length, validation: splits.validation.labels.length, test: splits.test.labels.length },
    tasks,
    skipped: [],
    shards,
    createdAt: new Date().toISOString(),
  };
  await putJson(store, `${prefix}/report.json`, report);
  // runTrainingJob writes the job's status when none exists.
  const jobId = `train-${name}`;
  return { jobId, preparedPrefix: prefix };
}

async function runJob(store: ObjectStore, name: string, splits: Record<SplitName, Records>, spec: TrainSpecInput) {
  const job = await writePrepared(store, name, splits, spec);
  const t = performance.now();
  const r = await runTrainingJob(job, { store, log: process.env.TL_BENCH_JOB_LOG ? (l) => process.stderr.write(`  [${name}] ${l}\n`) : undefined });
  const seconds = (performance.now() - t) / 1000;
  if (!r.ok) throw new Error(`${name}: ${r.error.code}: ${r.error.message}`);
  const report = await getJson<VersionReport>(store, `models/${name}/${r.version}/report.json`);
  const acc = Object.fromEntries(Object.entries(report.tasks).map(([task, v]) => [task, round(v.test && 'accuracy' in v.test ? v.test.accuracy : 0)]));
  return { acc, seconds: round(seconds, 1), report };
}

const CUTS = [
  { name: 'flatten_1', cut: { layer: 'flatten_1', pooling: 'none' as const } },
  { name: 'block_13_expand_relu (avg)', cut: { layer: 'block_13_expand_relu', pooling: 'avg' as const } },
  { name: 'block_16_project (avg)', cut: { layer: 'block_16_project', pooling: 'avg' as const } },
];

/** The reference on each candidate: CV'd logistic regression on train + validation, scored on test, per task. */
async function references(store: ObjectStore, pool: Records, test: Records, tasks: Record<string, string[]>) {
  const out: Record<string, Record<string, { cv: number; l2: number; test: number }>> = {};
  const candidates: Array<{ name: string; embed: (r: Records) => Promise<Float32Array> }> = [];
  const mobilenet = await resolveBase(store, 'mobilenet_v2');
  for (const c of CUTS) {
    candidates.push({
      name: c.name,
      embed: async (r) => {
        const e = await loadEmbedder(store, mobilenet, { embedding: c.cut });
        try {
          return await e.embed(r.pixels as Uint8Array, r.labels.length, { sourceShape: SHAPE });
        } finally {
          e.dispose();
        }
      },
    });
  }
  candidates.push({
    name: 'pixels 32×32×3',
    embed: async (r) => {
      const e = await loadEmbedder(store, await resolveBase(store, 'none'));
      return e.embed(r.pixels as Uint8Array, r.labels.length, { sourceShape: SHAPE });
    },
  });
  for (const c of candidates) {
    const [xp, xt] = [await c.embed(pool), await c.embed(test)];
    out[c.name] = {};
    for (const [task, classes] of Object.entries(tasks)) {
      const y = pool.labels.map((l) => classes.indexOf(l[task]));
      const yt = test.labels.map((l) => classes.indexOf(l[task]));
      const ref = await crossValidatedLogistic(xp, y, classes.length);
      out[c.name][task] = {
        cv: round(ref.best.mean),
        l2: ref.best.l2,
        test: round(accuracyOf(predictLogistic(ref.model, ref.standardise(xt)), yt, classes.length)),
      };
    }
  }
  return out;
}

export interface SearchBenchOptions {
  perClass?: number[];
  seeds?: number;
  multiTask?: boolean;
  log?: (line: string) => void;
}

export async function benchSearch(opts: SearchBenchOptions = {}) {
  const log = opts.log ?? (() => {});
  const { backend } = await loadTf();
  const trainSet = await loadFashionMnist('train');
  const testSet = takePerClass(await loadFashionMnist('t10k'), 100);
  const labelsOf = (set: ImageSet) => Array.from(set.labels, (c) => ({ fine: FASHION[c], coarse: COARSE_OF[FASHION[c]] }));
  const tasks: Record<string, string[]> = opts.multiTask ? { fine: [...FASHION].sort(), coarse: COARSE_CLASSES } : { fine: [...FASHION].sort() };
  const only = (r: Records): Records => (opts.multiTask ? r : { ...r, labels: r.labels.map((l) => ({ fine: l.fine })) });
  const test = only({ pixels: toRgb(testSet), labels: labelsOf(testSet) });
  const taskSpec = Object.keys(tasks).map((name) => ({ name, type: 'classification' as const }));
  const rows = [];
  for (const perClass of opts.perClass ?? [10, 30, 100]) {
    for (let seed = 0; seed < (opts.seeds ?? 2); seed++) {
      const set = takePerClass(trainSet, perClass, 200 + seed * perClass);
      const all = only({ pixels: toRgb(set), labels: labelsOf(set) });
      // 15 % of each class to validation, as preprocessing's default split would hold out.
      const seen = new Map<string, number>();
      const trainIdx: number[] = [];
      const valIdx: number[] = [];
      all.labels.forEach((l, i) => {
        const k = seen.get(l.fine) ?? 0;
        seen.set(l.fine, k + 1);
        (k < Math.round(perClass * 0.15) ? valIdx : trainIdx).push(i);
      });
      const splits = { train: subset(all, trainIdx), validation: subset(all, valIdx), test };
      const pool = subset(all, [...trainIdx, ...valIdx]);
      const dir = await mkdtemp(path.join(tmpdir(), 'tl-bench-search-'));
      const store = new FsObjectStore({ root: dir });
      try {
        const base = { tasks: taskSpec, training: { seed } };
        log(`search: ${perClass}/class seed ${seed}: default job...`);
        // Without the search first: each of the two then runs the base once (the search's other
        // cuts miss the cache, and their one pass computes every cut), so their times compare.
        const off = await runJob(store, 'off', splits, { base: 'mobilenet_v2', ...base, training: { seed, search: 'off' } });
        const auto = await runJob(store, 'auto', splits, { base: 'mobilenet_v2', ...base });
        const alone: Record<string, Record<string, number>> = {};
        for (const c of CUTS.slice(1))
          alone[c.name] = (
            await runJob(store, `pin-${c.cut.layer}`.toLowerCase().replace(/_/g, '-'), splits, { base: 'mobilenet_v2', cut: c.cut, ...base })
          ).acc;
        alone.flatten_1 = off.acc;
        alone['pixels 32×32×3'] = (await runJob(store, 'pixels', splits, { base: 'none', ...base })).acc;
        log(`search: ${perClass}/class seed ${seed}: references...`);
        const ref = await references(store, pool, test, tasks);
        const score = (acc: Record<string, number>) => Object.keys(tasks).reduce((a, t) => a + acc[t], 0) / Object.keys(tasks).length;
        const bestAlone = Math.max(...Object.values(alone).map(score));
        const refScores = Object.fromEntries(
          Object.entries(ref).map(([c, v]) => [c, Object.keys(tasks).reduce((a, t) => a + v[t].test, 0) / Object.keys(tasks).length]),
        );
        const bestRef = Math.max(...Object.values(refScores));
        const row = {
          perClass,
          seed,
          trainImages: trainIdx.length,
          validationImages: valIdx.length,
          job: {
            acc: auto.acc,
            score: round(score(auto.acc)),
            chosen: auto.report.search?.chosen,
            family: auto.report.search?.leaderboard.find((e) => e.chosen)?.family,
            leaderboard: auto.report.search?.leaderboard.map((e) => ({ candidate: e.candidate, family: e.family, cvMean: e.cvMean, note: e.note })),
            searchSeconds: auto.report.search?.seconds,
            jobSeconds: auto.seconds,
          },
          searchOff: { acc: off.acc, score: round(score(off.acc)), jobSeconds: off.seconds },
          alone,
          bestAlone: round(bestAlone),
          reference: ref,
          bestReference: round(bestRef),
          meetsAlone: score(auto.acc) >= bestAlone - 0.01,
          meetsReference: score(auto.acc) >= bestRef - 0.01,
          costRatio: round(auto.seconds / off.seconds, 2),
        };
        log(
          `search: ${perClass}/class seed ${seed}: job ${row.job.score} (${row.job.chosen}, search ${row.job.searchSeconds} s), best alone ${row.bestAlone}, best reference ${row.bestReference}, search off ${row.searchOff.score}; job time ${auto.seconds} s vs ${off.seconds} s without search`,
        );
        rows.push(row);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  }
  return {
    backend,
    dataset: 'fashion-mnist (Debian dataset-fashion-mnist): train/validation from the train set, test = 1,000 t10k images (100 per class)',
    tasks: Object.keys(tasks),
    criterion: 'test accuracy (multi-task: mean over tasks)',
    rows,
  };
}

/**
 * Tabular data: the UCI optical-recognition digits, 8×8 counts per image as 64 numeric
 * features (1,797 rows, 10 classes), as Debian's python3-sklearn 1.2.1 ships them
 * (`sklearn/datasets/data/digits.csv.gz`; `apt-get download python3-sklearn`, then
 * `dpkg -x`, no install needed; give the file with `--digits=<path>`). Per seed: 30 rows
 * per class labelled (85 / 15 train / validation), 100 other rows per class as the test
 * split. The job's search is over the head family (linear vs one hidden layer) on the
 * standardised features; the reference is CV'd logistic regression on the same records.
 */
export async function benchSearchTabular(opts: { file: string; perClass?: number; seeds?: number; log?: (line: string) => void }) {
  const log = opts.log ?? (() => {});
  const { gunzipSync } = await import('node:zlib');
  const { readFile } = await import('node:fs/promises');
  const rows = gunzipSync(await readFile(opts.file))
    .toString()
    .trim()
    .split('\n')
    .map((l) => l.split(',').map(Number));
  const size = rows[0].length - 1;
  const perClass = opts.perClass ?? 30;
  const out = [];
  for (let seed = 0; seed < (opts.seeds ?? 2); seed++) {
    // Deterministic per seed: rows of each class in a shuffled order, the first perClass labelled.
    const byClass = new Map<number, number[]>();
    rows.forEach((r, i) => byClass.set(r[size], [...(byClass.get(r[size]) ?? []), i]));
    const pick = { train: [] as number[], validation: [] as number[], test: [] as number[] };
    for (const [, idx] of [...byClass].sort((a, b) => a[0] - b[0])) {
      const order = idx
        .map((i) => [(Math.sin(i * 12.9898 + seed * 78.233) * 43758.5453) % 1, i] as const)
        .sort((a, b) => a[0] - b[0])
        .map(([, i]) => i);
      const nVal = Math.round(perClass * 0.15);
      pick.validation.push(...order.slice(0, nVal));
      pick.train.push(...order.slice(nVal, perClass));
      pick.test.push(...order.slice(perClass, perClass + 100));
    }
    const records = (idx: number[]): Records => ({
      pixels: Float32Array.from(idx.flatMap((i) => rows[i].slice(0, size))),
      labels: idx.map((i) => ({ digit: String(rows[i][size]) })),
    });
    const splits = { train: records(pick.train), validation: records(pick.validation), test: records(pick.test) };
    const dir = await mkdtemp(path.join(tmpdir(), 'tl-bench-tabular-'));
    const store = new FsObjectStore({ root: dir });
    try {
      const spec = { input: { type: 'vector' as const }, base: 'none', tasks: [{ name: 'digit', type: 'classification' as const }] };
      const off = await runJob(store, 'off', splits, { ...spec, training: { seed, search: 'off' } });
      const auto = await runJob(store, 'auto', splits, { ...spec, training: { seed } });
      const pool = records([...pick.train, ...pick.validation]);
      const classes = [...new Set(rows.map((r) => String(r[size])))].sort();
      const y = pool.labels.map((l) => classes.indexOf(l.digit));
      const yt = splits.test.labels.map((l) => classes.indexOf(l.digit));
      const ref = await crossValidatedLogistic(pool.pixels as Float32Array, y, classes.length);
      const reference = round(accuracyOf(predictLogistic(ref.model, ref.standardise(splits.test.pixels as Float32Array)), yt, classes.length));
      const row = {
        seed,
        trainRows: pick.train.length,
        validationRows: pick.validation.length,
        testRows: pick.test.length,
        job: {
          acc: auto.acc.digit,
          chosen: auto.report.search?.leaderboard.find((e) => e.chosen)?.family,
          searchSeconds: auto.report.search?.seconds,
          jobSeconds: auto.seconds,
        },
        searchOff: { acc: off.acc.digit, jobSeconds: off.seconds },
        reference: { test: reference, cv: round(ref.best.mean), l2: ref.best.l2 },
        meetsAlone: auto.acc.digit >= off.acc.digit - 0.01,
        meetsReference: auto.acc.digit >= reference - 0.01,
      };
      log(
        `search (tabular digits, ${perClass}/class, seed ${seed}): job ${row.job.acc} (${row.job.chosen}), hidden head alone ${row.searchOff.acc}, reference ${reference}`,
      );
      out.push(row);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  return { dataset: 'UCI optical-recognition digits (64 features, 10 classes) from Debian python3-sklearn 1.2.1', perClass, rows: out };
}
