/**
 * Which representation a practitioner's reference model does best on, per data size:
 * the groundwork of the representation search (issue 10). For Fashion-MNIST at a few
 * labelled images per class it measures, on 1,000 held-out test images (100 per class
 * from t10k), the test accuracy of
 * - the reference: multinomial logistic regression with L2 chosen by stratified 5-fold
 *   CV (shared/ml/logistic.ts), trained on all the labelled images, per representation
 *   (MobileNetV2 cuts, their concatenation, the raw pixels);
 * - the platform's default head on flatten_1 trained on the images alone (no search),
 *   the model the job serves today for an image classification spec.
 *
 * `node --import tsx bench/representations.ts [perClass ...]` writes bench/results/representations.json.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { resolveBase } from '../shared/ml/base-models.js';
import { loadEmbedder, type Embedder } from '../shared/ml/embedder.js';
import { accuracyOf, crossValidatedLogistic, predictLogistic } from '../shared/ml/logistic.js';
import { loadTf } from '../shared/tf/loader.js';
import {
  EMBEDDING_LAYER_CANDIDATES,
  FASHION_MNIST_DIR,
  headAccuracy,
  loadFashionMnist,
  nearestMeanAccuracy,
  takePerClass,
  withStore,
  type ImageSet,
} from './ml.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

interface Features {
  name: string;
  size: number;
  train: Float32Array;
  test: Float32Array;
  /** Seconds to compute train and test features. */
  seconds: number;
}

/** Rows of a and b side by side: count×(da+db). */
function concat(a: Features, b: Features, name: string): Features {
  const join = (x: Float32Array, y: Float32Array) => {
    const n = x.length / a.size;
    const out = new Float32Array(n * (a.size + b.size));
    for (let i = 0; i < n; i++) {
      out.set(x.subarray(i * a.size, (i + 1) * a.size), i * (a.size + b.size));
      out.set(y.subarray(i * b.size, (i + 1) * b.size), i * (a.size + b.size) + a.size);
    }
    return out;
  };
  return { name, size: a.size + b.size, train: join(a.train, b.train), test: join(a.test, b.test), seconds: a.seconds + b.seconds };
}

async function featuresOf(name: string, embedder: Embedder, train: ImageSet, test: ImageSet): Promise<Features> {
  try {
    const t = performance.now();
    const opts = { batchSize: 32, sourceShape: train.shape };
    const f = {
      name,
      size: embedder.size,
      train: await embedder.embed(train.pixels, train.count, opts),
      test: await embedder.embed(test.pixels, test.count, opts),
    };
    return { ...f, seconds: round((performance.now() - t) / 1000, 1) };
  } finally {
    embedder.dispose();
  }
}

export async function benchRepresentations(opts: { perClass?: number[]; seeds?: number; log?: (line: string) => void } = {}) {
  const perClassList = opts.perClass ?? [10, 30];
  const seeds = opts.seeds ?? 2;
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const { backend, packageName } = await loadTf();
  if (!existsSync(path.join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'))) {
    return { backend, skipped: `Fashion-MNIST not found in ${FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)` };
  }
  const all = await loadFashionMnist('train');
  const test = takePerClass(await loadFashionMnist('t10k'), 100);
  const rows: Array<Record<string, unknown>> = [];
  await withStore(async (store) => {
    const base = await resolveBase(store, 'mobilenet_v2');
    for (const perClass of perClassList) {
      for (let seed = 0; seed < seeds; seed++) {
        // Seed s takes the s-th block of perClass images of each class: disjoint training sets.
        const train = takePerClass(all, perClass, seed * perClass);
        const candidates: Features[] = [];
        for (const c of EMBEDDING_LAYER_CANDIDATES) {
          const name = `${c.layer}${c.pooling === 'avg' ? ' (avg pooled)' : ''}`;
          candidates.push(await featuresOf(name, await loadEmbedder(store, base, { embedding: c }), train, test));
          log(`representations: ${perClass}/class seed ${seed}: ${name} in ${candidates.at(-1)!.seconds} s`);
        }
        candidates.push(concat(concat(candidates[0], candidates[1], ''), candidates[2], 'all three cuts concatenated'));
        candidates.push(
          await featuresOf('pixels (base none, 28×28)', await loadEmbedder(store, { kind: 'none', name: 'none', inputShape: [28, 28, 1] }), train, test),
        );
        const result: Record<string, unknown> = { perClass, seed, trainImages: train.count, testImages: test.count };
        const reference: Record<string, { cv: number; cvSd: number; l2: number; test: number; seconds: number }> = {};
        for (const f of candidates) {
          const t = performance.now();
          const cv = await crossValidatedLogistic(f.train, train.labels, 10, { seed: 42 + seed });
          const acc = accuracyOf(predictLogistic(cv.model, cv.standardise(f.test)), test.labels, 10);
          reference[f.name] = {
            cv: round(cv.best.mean),
            cvSd: round(cv.best.sd),
            l2: cv.best.l2,
            test: round(acc),
            seconds: round((performance.now() - t) / 1000, 1),
          };
          log(`representations: ${perClass}/class seed ${seed}: ${f.name}: CV ${reference[f.name].cv} test ${reference[f.name].test}`);
        }
        result.reference = reference;
        const byCv = Object.entries(reference).sort((a, b) => b[1].cv - a[1].cv)[0];
        result.chosenByCv = { name: byCv[0], test: byCv[1].test };
        result.bestOnTest = Math.max(...Object.values(reference).map((r) => r.test));
        result.platformDefaultHead = round(await headAccuracy(candidates[0].train, train.labels, candidates[0].test, test.labels, candidates[0].size));
        log(`representations: ${perClass}/class seed ${seed}: platform head on flatten_1 ${String(result.platformDefaultHead)}`);
        rows.push(result);
      }
    }
  });
  return { backend, packageName, dataset: 'fashion-mnist (Debian dataset-fashion-mnist)', rows };
}

/**
 * Few-shot prototypes: nearest-class-mean test accuracy per MobileNetV2 cut at k images
 * per class, and the cut leave-one-out chooses (k ≥ 2) or the fallback (k = 1), as the
 * prototype job does (shared/ml/prototype-job.ts).
 */
export async function benchPrototypeCuts(opts: { shots?: number[]; seeds?: number; log?: (line: string) => void } = {}) {
  const shots = opts.shots ?? [1, 5, 10];
  const seeds = opts.seeds ?? 2;
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const { backend } = await loadTf();
  if (!existsSync(path.join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'))) return { backend, skipped: `Fashion-MNIST not found in ${FASHION_MNIST_DIR}` };
  const { leaveOneOutAccuracy } = await import('../shared/ml/prototype-classifier.js');
  const { MOBILENET_V2_FEW_SHOT } = await import('../shared/ml/base-models.js');
  const all = await loadFashionMnist('train');
  const test = takePerClass(await loadFashionMnist('t10k'), 50);
  const cuts = [undefined, ...MOBILENET_V2_FEW_SHOT.candidates];
  const name = (c: (typeof cuts)[number]) => (c ? `${c.layer} (avg pooled)` : 'flatten_1');
  const rows: Array<Record<string, unknown>> = [];
  await withStore(async (store) => {
    const base = await resolveBase(store, 'mobilenet_v2');
    const pool = takePerClass(all, Math.max(...shots) * seeds);
    const perCut = [];
    for (const c of cuts) perCut.push(await featuresOf(name(c), await loadEmbedder(store, base, c ? { embedding: c } : {}), pool, test));
    for (const k of shots)
      for (let seed = 0; seed < seeds; seed++) {
        // Rows of the pool: k per class, the seed-th block of each class's images.
        const index: number[] = [];
        const seen = new Map<number, number>();
        pool.labels.forEach((y, i) => {
          const n = seen.get(y) ?? 0;
          seen.set(y, n + 1);
          if (n >= seed * k && n < (seed + 1) * k) index.push(i);
        });
        const labels = index.map((i) => pool.labels[i]);
        const row: Record<string, unknown> = { shots: k, seed };
        let chosen = { name: name(MOBILENET_V2_FEW_SHOT.fallback), loo: -1 };
        for (const f of perCut) {
          const x = new Float32Array(index.length * f.size);
          index.forEach((r, n) => x.set(f.train.subarray(r * f.size, (r + 1) * f.size), n * f.size));
          const loo = leaveOneOutAccuracy(x, index.length, f.size, labels, 10);
          const acc = nearestMeanAccuracy(x, labels, f.test, test.labels, f.size, 10);
          row[f.name] = { test: round(acc), ...(loo !== undefined ? { leaveOneOut: round(loo) } : {}) };
          if (loo !== undefined && loo > chosen.loo + 1e-12) chosen = { name: f.name, loo };
        }
        row.chosen = chosen.name;
        row.chosenTest = (row[chosen.name] as { test: number }).test;
        log(`prototypes: ${k}-shot seed ${seed}: ${JSON.stringify(row)}`);
        rows.push(row);
      }
  });
  return { backend, dataset: 'fashion-mnist (Debian dataset-fashion-mnist)', testImages: test.count, rows };
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const prototypes = process.argv[2] === 'prototypes';
  const sizes = process.argv
    .slice(prototypes ? 3 : 2)
    .map(Number)
    .filter((n) => n > 0);
  const run = prototypes
    ? benchPrototypeCuts({ shots: sizes.length ? sizes : undefined })
    : benchRepresentations({ perClass: sizes.length ? sizes : undefined });
  run
    .then(async (out) => {
      await mkdir(path.join(here, 'results'), { recursive: true });
      await writeFile(path.join(here, `results/${prototypes ? 'prototype-cuts' : 'representations'}.json`), `${JSON.stringify(out, null, 2)}\n`);
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    })
    .catch((err) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    });
}
