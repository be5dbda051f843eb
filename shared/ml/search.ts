/**
 * Representation search: which input the heads should read (a cut of the pretrained
 * base, or the raw pixels) is measured, not assumed. Every candidate's features of the
 * same records (train + validation: the test split is never looked at) are scored by
 * stratified k-fold cross-validation of the reference model, multinomial logistic
 * regression over an L2 grid (./logistic.ts), and the best one wins; on a tie the
 * candidate with fewer features (the simpler model) stays.
 *
 * Why a linear model scores the candidates: it is cheap enough to cross-validate on
 * cached features in seconds (the L2 path warm-started, folds standardised on their
 * own fitting rows), and on Fashion-MNIST its ranking of the cuts matched the held-out
 * ranking of the platform's trained heads (bench/representations.ts). Multi-task specs
 * are scored by the mean over main tasks of each task's CV accuracy divided by that
 * task's best over the candidates, so a task with low accuracy everywhere does not drown
 * the others.
 *
 * The search runs under a time budget: candidates are tried in order (the base's
 * embedding layer first), and those left when the budget is spent are listed as not tried.
 * With one task, a candidate stops after the fold where even a perfect score on every fold
 * left could not bring it level with the leader so far (logistic.ts, cannotReach): it
 * could not have won, so the winner is the one a full run picks, and the leaderboard shows
 * its score over the folds it ran. Measured on the issue's 500-image shapes set: the pixels
 * candidate (0.43 against the leader's 0.98) stopped after one fold, and the search stage
 * took 3.1–3.3 s instead of 4.5–4.9 s.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { SearchReport } from '../schemas/search.js';
import { fitFeatureScaling, standardiseFeatures, type FeatureScaling } from './features.js';
import { TooFewForFoldsError } from './folds.js';
import { crossValidatePath, fitLogistic, type LogisticModel } from './logistic.js';
import { loadTf } from '../tf/loader.js';

export type { SearchReport } from '../schemas/search.js';

/** λ grid of the linear family, strongest first (the warm-start path runs from simple to flexible). */
export const SEARCH_L2_GRID = [1, 0.1, 0.01, 0.001] as const;
/**
 * Gradient tolerance of the fits inside CV. Measured on 500 Fashion-MNIST images (flatten_1,
 * 1280 features): 1e-5 took 4.7× the time of 1e-3 and changed no fold's held-out accuracy
 * by more than 2 records in 100; a refit keeps logistic.ts's tighter default.
 */
export const SEARCH_TOLERANCE = 1e-3;

export interface SearchCandidate {
  /** Shown in the leaderboard, e.g. `flatten_1` or `pixels 32×32×3`. */
  name: string;
  size: number;
  /** count×size features of the pool's records, or a function computing them (called only when the budget allows). */
  x: Float32Array | (() => Promise<Float32Array>);
}

export interface SearchTask {
  name: string;
  classes: number;
  /** Class index per pool record, −1 for a record without this task's label. */
  labels: Int32Array;
}

export interface SearchOptions {
  candidates: SearchCandidate[];
  /** Main tasks, every one single-label classification. */
  tasks: SearchTask[];
  /** @default 5 */
  k?: number;
  /** @default 42 */
  seed?: number;
  /** Milliseconds of search allowed; candidates left when it is spent are not tried. @default no limit */
  budgetMs?: number;
  log?: (line: string) => void;
}

interface Scored {
  candidate: SearchCandidate;
  /** Folds scored when the candidate was stopped early (it could not reach the leader); undefined when all were. */
  stoppedAfter?: number;
  /** Per task: CV accuracy at its best λ, the sd over folds there, that λ, and every λ's mean. */
  tasks: Record<string, { mean: number; sd: number; l2: number; scores: Array<{ l2: number; mean: number }> }>;
  seconds: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const rowsOf = (x: Float32Array, d: number, index: readonly number[]) => {
  const out = new Float32Array(index.length * d);
  index.forEach((r, n) => out.set(x.subarray(r * d, (r + 1) * d), n * d));
  return out;
};

/**
 * Fewer rows than features (pixels, a wide cut, few images): the L2-penalised fit depends
 * on the rows only through their inner products (its weights lie in the rows' span), so
 * the same problem is solved on n×n features Z with Z Zᵀ = X Xᵀ: Z = L from the Cholesky
 * factorisation of K = X Xᵀ, and any other row x maps to L⁻¹ (X x). Weights on X are
 * Xᵀ L⁻ᵀ w. K is computed by the backend in float32 and gets a jitter of 1e-6 of its
 * trace on the diagonal: centred rows make K singular, and float32 rounding of its large
 * eigenvalues swamps the small ones (1e-6 of the mean diagonal was not enough: negative
 * pivots, CV accuracy 0.36 instead of 0.75 on Fashion-MNIST pixels). Same objective up to
 * that jitter; each gradient costs n² instead of n·d per class. Measured on the pixels of
 * 430 Fashion-MNIST images (3072 features), 5-fold CV: 10.4 s → 3.2–3.7 s on a loaded
 * machine, the same CV accuracy (0.758); `test/unit/ml/search.test.ts` checks the
 * predictions against the primal fit.
 */
export async function rowSpace(x: Float32Array, n: number, d: number) {
  const { tf } = await loadTf();
  const X = tf.tensor2d(x, [n, d]);
  // K by the backend's matrix product (float32); the jitter below covers its rounding.
  const KT = tf.tidy(() => tf.matMul(X, tf.transpose(X)));
  const K = Float64Array.from(KT.dataSync());
  KT.dispose();
  let trace = 0;
  for (let i = 0; i < n; i++) trace += K[i * n + i];
  const jitter = 1e-6 * trace + 1e-12;
  // Cholesky, lower triangle, row-major, in place.
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = K[i * n + j] + (i === j ? jitter : 0);
      for (let p = 0; p < j; p++) s -= L[i * n + p] * L[j * n + p];
      L[i * n + j] = i === j ? Math.sqrt(Math.max(s, jitter)) : s / L[j * n + j];
    }
  }
  const z = Float32Array.from(L);
  /** Rows of `others` (count×d) in Z coordinates: forward substitution of L y = X xᵀ. */
  const map = (others: Float32Array, count: number): Float32Array => {
    if (count === 0) return new Float32Array(0);
    // tidy returns the tensor and it is read after: a typed array returned from tidy is walked
    // element by element looking for tensors (measured: 0.37 s of a 500-image job's search).
    const kxT = tf.tidy(() => tf.matMul(tf.tensor2d(others, [count, d]), tf.transpose(X))); // count×n
    const kx = kxT.dataSync();
    kxT.dispose();
    const out = new Float32Array(count * n);
    for (let r = 0; r < count; r++) {
      for (let i = 0; i < n; i++) {
        let s = kx[r * n + i];
        for (let p = 0; p < i; p++) s -= L[i * n + p] * out[r * n + p];
        out[r * n + i] = s / L[i * n + i];
      }
    }
    return out;
  };
  /** Weights on Z (n×c) → weights on X (d×c): Xᵀ L⁻ᵀ w, by back substitution then one product. */
  const toWeights = (w: Float64Array, c: number): Float64Array => {
    const a = new Float64Array(n * c);
    for (let k = 0; k < c; k++) {
      for (let i = n - 1; i >= 0; i--) {
        let s = w[i * c + k];
        for (let p = i + 1; p < n; p++) s -= L[p * n + i] * a[p * c + k];
        a[i * c + k] = s / L[i * n + i];
      }
    }
    const wT = tf.tidy(() => tf.matMul(X, tf.tensor2d(Float32Array.from(a), [n, c]), true, false));
    const weights = Float64Array.from(wT.dataSync());
    wT.dispose();
    return weights;
  };
  return { z, map, toWeights, dispose: () => X.dispose() };
}

/** Below this ratio of rows to features the row-space form is used. */
const ROW_SPACE_BELOW = 0.8;

/** CV accuracy per λ of one task on one candidate's features: folds outside, the λ path inside, warm-started. */
export async function crossValidateTask(x: Float32Array, size: number, task: SearchTask, opts: { k?: number; seed?: number; stopBelow?: number } = {}) {
  const { scores, best, k, folds } = await crossValidatePath(x, task.labels, task.classes, {
    l2Grid: SEARCH_L2_GRID,
    k: opts.k,
    seed: opts.seed,
    tolerance: SEARCH_TOLERANCE,
    stopBelow: opts.stopBelow,
    features: async (fit, held, nFit, nHeld) => {
      if (nFit >= ROW_SPACE_BELOW * size) return { fit, held };
      const space = await rowSpace(fit, nFit, size);
      try {
        return { fit: space.z, held: space.map(held, nHeld) };
      } finally {
        space.dispose();
      }
    },
  });
  return { ...best, k, folds, scores };
}

/** Other fold draws for the λ of the refit (see chooseRefitL2). */
export const L2_REPEATS = 2;

/**
 * The λ a single-task refit uses, from the winner's CV scores averaged over
 * 1 + L2_REPEATS draws of the folds (other seeds). One draw cannot tell the grid's λ
 * apart on a few hundred images: on Fashion-MNIST at 30 per class (block_13, seed 1)
 * one draw scored λ = 1 and 0.1 equal at 0.777 and kept λ = 1 (test 0.780); three
 * draws gave 0.769 / 0.773 / 0.767 / 0.767 and λ = 0.1 (test 0.800). Costs
 * L2_REPEATS more CVs of one candidate.
 */
export async function chooseRefitL2(
  x: Float32Array,
  size: number,
  task: SearchTask,
  first: Array<{ l2: number; mean: number }>,
  opts: { k?: number; seed?: number } = {},
): Promise<{ l2: number; means: Array<{ l2: number; mean: number }> }> {
  const sums = first.map((s) => s.mean);
  for (let r = 1; r <= L2_REPEATS; r++) {
    const again = await crossValidateTask(x, size, task, { k: opts.k, seed: (opts.seed ?? 42) + 1000 * r });
    again.scores.forEach((s, g) => (sums[g] += s.mean));
  }
  const means = first.map((s, g) => ({ l2: s.l2, mean: sums[g] / (1 + L2_REPEATS) }));
  const best = means.reduce((a, b) => (b.mean > a.mean + 1e-12 ? b : a));
  return { l2: best.l2, means };
}

export interface SearchResult {
  report: SearchReport;
  /** Index into the candidates of the one chosen. */
  chosen: number;
  /** Per task, the λ chosen on the winning candidate, and every λ's CV mean there. */
  l2: Record<string, number>;
  l2Scores: Record<string, Array<{ l2: number; mean: number }>>;
  /** Per task, the chosen candidate's CV accuracy at its λ (unrounded: 1 means every held-out record was right). */
  cvMeans: Record<string, number>;
  /** The chosen candidate's pool features (already computed). */
  x: Float32Array;
}

/**
 * Scores every candidate (in order, within the budget) and picks one.
 * @throws TooFewForFoldsError when a task has a class with a single record (no fold can hold it out).
 */
export async function searchRepresentations(opts: SearchOptions): Promise<SearchResult> {
  const log = opts.log ?? (() => {});
  const started = performance.now();
  const scored: Scored[] = [];
  const features = new Map<number, Float32Array>();
  let k = opts.k ?? 5;
  for (const [i, candidate] of opts.candidates.entries()) {
    const spent = performance.now() - started;
    if (scored.length > 0 && opts.budgetMs !== undefined && spent > opts.budgetMs) {
      log(`search: time budget of ${(opts.budgetMs / 1000).toFixed(1)} s spent; ${candidate.name} not tried`);
      continue;
    }
    const t = performance.now();
    const x = typeof candidate.x === 'function' ? await candidate.x() : candidate.x;
    features.set(i, x);
    const tasks: Scored['tasks'] = {};
    // One task: a candidate that can no longer reach the leader's accuracy stops (cannotReach in
    // logistic.ts); it could not have won. Several tasks are not stopped: their criterion divides
    // by each task's best over every candidate, later ones included.
    const leader = opts.tasks.length === 1 ? leaderOf(scored, (s) => s.tasks[opts.tasks[0].name].mean) : undefined;
    let stoppedAfter: number | undefined;
    for (const task of opts.tasks) {
      const r = await crossValidateTask(x, candidate.size, task, { k: opts.k, seed: opts.seed, stopBelow: leader?.tasks[task.name].mean });
      tasks[task.name] = { mean: r.mean, sd: r.sd, l2: r.l2, scores: r.scores };
      k = r.k;
      if (r.folds < r.k) stoppedAfter = r.folds;
    }
    const seconds = (performance.now() - t) / 1000;
    scored.push({ candidate, tasks, seconds, stoppedAfter });
    log(
      `search: ${candidate.name} (${candidate.size} features): ${opts.tasks.map((tk) => `${tk.name} ${tasks[tk.name].mean.toFixed(3)} ± ${tasks[tk.name].sd.toFixed(3)}`).join(', ')} in ${seconds.toFixed(1)} s${stoppedAfter ? ` (stopped after ${stoppedAfter} of ${k} folds: it could not reach ${leader!.candidate.name} any more)` : ''}`,
    );
  }
  // Criterion: one task, its CV accuracy; several, the mean of each task's accuracy over its best.
  const bestPerTask = Object.fromEntries(opts.tasks.map((tk) => [tk.name, Math.max(...scored.map((s) => s.tasks[tk.name].mean))]));
  const criterion = (s: Scored) =>
    opts.tasks.length === 1 ? s.tasks[opts.tasks[0].name].mean : mean(opts.tasks.map((tk) => s.tasks[tk.name].mean / Math.max(1e-12, bestPerTask[tk.name])));
  const spread = (s: Scored) => (opts.tasks.length === 1 ? s.tasks[opts.tasks[0].name].sd : mean(opts.tasks.map((tk) => s.tasks[tk.name].sd)));
  const winner = leaderOf(scored, criterion)!;
  const chosen = opts.candidates.indexOf(winner.candidate);
  const tried = new Set(scored.map((s) => s.candidate));
  const report: SearchReport = {
    method: `stratified ${k}-fold cross-validation of multinomial logistic regression (L2 over ${SEARCH_L2_GRID.join(', ')}) on the train and validation records`,
    criterion: opts.tasks.length === 1 ? 'CV accuracy' : 'mean over main tasks of CV accuracy / that task’s best',
    records: opts.tasks[0]?.labels.length ?? 0,
    folds: k,
    budgetSeconds: opts.budgetMs === undefined ? undefined : round(opts.budgetMs / 1000, 1),
    seconds: round((performance.now() - started) / 1000, 2),
    leaderboard: [
      ...scored.map((s) => ({
        candidate: s.candidate.name,
        size: s.candidate.size,
        family: 'linear' as const,
        cvMean: round(criterion(s), 4),
        cvSd: round(spread(s), 4),
        tasks: Object.fromEntries(Object.entries(s.tasks).map(([n, v]) => [n, { cvMean: round(v.mean, 4), cvSd: round(v.sd, 4), l2: v.l2 }])),
        seconds: round(s.seconds, 2),
        chosen: s === winner,
        ...(s.stoppedAfter
          ? {
              folds: s.stoppedAfter,
              note: `stopped after ${s.stoppedAfter} of ${k} folds: it could not catch up with the leader even if every remaining fold were perfect`,
            }
          : {}),
      })),
      ...opts.candidates
        .filter((c) => !tried.has(c))
        .map((c) => ({ candidate: c.name, size: c.size, family: 'linear' as const, chosen: false, note: 'not tried: time budget spent' })),
    ],
    chosen: winner.candidate.name,
    verdict: verdictOf(scored, winner, criterion),
  };
  return {
    report,
    chosen,
    l2: Object.fromEntries(Object.entries(winner.tasks).map(([n, v]) => [n, v.l2])),
    l2Scores: Object.fromEntries(Object.entries(winner.tasks).map(([n, v]) => [n, v.scores])),
    cvMeans: Object.fromEntries(Object.entries(winner.tasks).map(([n, v]) => [n, v.mean])),
    x: features.get(chosen)!,
  };
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

/** The best of the scored candidates by `criterion`; on a tie the one with fewer features (the simpler model). */
function leaderOf(scored: Scored[], criterion: (s: Scored) => number): Scored | undefined {
  let leader = scored[0];
  for (const s of scored.slice(1)) {
    const a = criterion(s);
    const b = criterion(leader);
    if (a > b + 1e-12 || (Math.abs(a - b) <= 1e-12 && s.candidate.size < leader.candidate.size)) leader = s;
  }
  return leader;
}

/** One line a user can act on: what won, by how much, and whether the pretrained base helped at all. */
function verdictOf(scored: Scored[], winner: Scored, criterion: (s: Scored) => number): string {
  const others = scored.filter((s) => s !== winner);
  if (others.length === 0) return `${winner.candidate.name} was the only representation tried`;
  // The runner-up among the candidates scored on every fold: a stopped one's score covers only the folds it ran.
  const complete = others.filter((s) => !s.stoppedAfter);
  if (complete.length === 0) {
    const pixels = winner.candidate.name.startsWith('pixels');
    return `${winner.candidate.name} wins: every other candidate was stopped once it could no longer reach it${pixels ? '; transfer does not help this data' : ''}`;
  }
  const next = complete.reduce((a, b) => (criterion(b) > criterion(a) ? b : a));
  const margin = (criterion(winner) - criterion(next)) * 100;
  if (margin < 1e-9)
    return `${winner.candidate.name} ties ${next.candidate.name} and has fewer features (${winner.candidate.size} vs ${next.candidate.size}): the simpler one is kept`;
  const pixels = winner.candidate.name.startsWith('pixels');
  if (pixels) return `pixels beat every pretrained cut here (${margin.toFixed(1)} points over ${next.candidate.name}): transfer does not help this data`;
  return `${winner.candidate.name} wins by ${margin.toFixed(1)} points over ${next.candidate.name}${margin < 1 ? ' (within noise: the simpler or default choice would do as well)' : ''}`;
}

/**
 * The chosen linear configuration refitted on every pool record, as a head model the
 * platform serves: `model` (built with no trunk and no dropout, one dense output per
 * task) gets each task's logistic weights with the standardisation folded in
 * (w/σ, b − Σ μw/σ), so it reads the raw features like any head.
 */
export async function refitLinear(
  model: LayersModel,
  x: Float32Array,
  size: number,
  tasks: SearchTask[],
  l2: Record<string, number>,
  headLayer: (task: string) => string,
): Promise<Record<string, { iterations: number; gradientMax: number; records: number }>> {
  const out: Record<string, { iterations: number; gradientMax: number; records: number }> = {};
  for (const task of tasks) {
    const index: number[] = [];
    task.labels.forEach((y, i) => y >= 0 && index.push(i));
    const rows = rowsOf(x, size, index);
    const scaling = fitFeatureScaling(rows, index.length, size);
    const standardised = standardiseFeatures(rows, size, scaling);
    const y = index.map((i) => task.labels[i]);
    let fitted: LogisticModel;
    if (index.length < ROW_SPACE_BELOW * size) {
      const space = await rowSpace(standardised, index.length, size);
      const onZ = await fitLogistic(space.z, y, task.classes, { l2: l2[task.name] });
      fitted = { ...onZ, weights: space.toWeights(onZ.weights, task.classes), features: size };
      space.dispose();
    } else fitted = await fitLogistic(standardised, y, task.classes, { l2: l2[task.name] });
    const { kernel, bias } = foldScaling(fitted, scaling);
    const layer = model.getLayer(headLayer(task.name));
    const [k0] = layer.getWeights();
    if (k0.shape[0] !== size || k0.shape[1] !== task.classes)
      throw new Error(`refitLinear: head ${task.name} is ${k0.shape.join('×')}, expected ${size}×${task.classes}`);
    const { tf } = await loadTf();
    const weights = [tf.tensor2d(kernel, [size, task.classes]), tf.tensor1d(bias)];
    layer.setWeights(weights); // copies into the layer's variables
    tf.dispose(weights);
    out[task.name] = { iterations: fitted.iterations, gradientMax: fitted.gradientMax, records: index.length };
  }
  return out;
}

/** Weights on standardised features → weights on raw ones. */
export function foldScaling(
  model: Pick<LogisticModel, 'weights' | 'bias' | 'features' | 'classes'>,
  scaling: FeatureScaling,
): { kernel: Float32Array; bias: Float32Array } {
  const { features: d, classes: c } = model;
  const kernel = new Float32Array(d * c);
  const bias = Float32Array.from(model.bias);
  for (let j = 0; j < d; j++) {
    for (let k = 0; k < c; k++) {
      const w = model.weights[j * c + k] / scaling.std[j];
      kernel[j * c + k] = w;
      bias[k] -= scaling.mean[j] * w;
    }
  }
  return { kernel, bias };
}

export { TooFewForFoldsError };
