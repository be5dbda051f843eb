/**
 * Multinomial logistic regression with an L2 penalty, fitted to its optimum: the
 * reference a practitioner reaches for ("ten lines of scikit-learn"), against which the
 * platform's models and its representation search are measured.
 *
 *   minimise  (1/n) Σ_i −log softmax(x_i W + b)[y_i]  +  (λ/2) ‖W‖²     (b unpenalised)
 *
 * The objective is convex, so its minimiser is unique; it is found with L-BFGS
 * (Nocedal & Wright, Numerical Optimization, 2nd ed., algorithm 7.4 with a
 * backtracking Armijo line search), the objective and gradient computed by TensorFlow.js.
 * Written here because no maintained npm package fits a softmax model with L-BFGS on
 * tfjs tensors; the gradient-at-the-optimum test (test/unit/ml/logistic.test.ts) checks it.
 */
import type { Tensor2D } from '@tensorflow/tfjs';
import { loadTf } from '../tf/loader.js';
import { fitFeatureScaling, standardiseFeatures } from './features.js';
import { foldSplit, stratifiedFolds } from './folds.js';

export interface LogisticModel {
  /** d×c weights, row-major. */
  weights: Float64Array;
  bias: Float64Array;
  features: number;
  classes: number;
  /** L-BFGS iterations run, and the largest gradient component at the end. */
  iterations: number;
  gradientMax: number;
}

export interface LogisticOptions {
  /** L2 strength λ. @default 1e-3 */
  l2?: number;
  /** Stop when every gradient component is below this. @default 1e-5 */
  tolerance?: number;
  /** @default 500 */
  maxIterations?: number;
  /** Correction pairs L-BFGS keeps. @default 10 */
  memory?: number;
  /**
   * Where to start: a model fitted on the same rows with a nearby λ (a warm start along
   * the regularisation path). The optimum is unique, so only the iterations change.
   */
  start?: Pick<LogisticModel, 'weights' | 'bias'>;
}

const dot = (a: Float64Array, b: Float64Array) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const maxAbs = (a: Float64Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/**
 * Fits the model on `count` rows of `x` (count×features, row-major) with labels 0..classes-1.
 * Standardise the features first: L-BFGS converges in far fewer steps on them.
 */
export async function fitLogistic(x: Float32Array, labels: ArrayLike<number>, classes: number, opts: LogisticOptions = {}): Promise<LogisticModel> {
  const { tf } = await loadTf();
  const n = labels.length;
  const d = x.length / n;
  const l2 = opts.l2 ?? 1e-3;
  const tolerance = opts.tolerance ?? 1e-5;
  const maxIterations = opts.maxIterations ?? 500;
  const memory = opts.memory ?? 10;
  const size = d * classes + classes;

  const X = tf.tensor2d(x, [n, d]);
  // Xᵀ once: matMul with transposeA is ~10× slower than a plain product on the wasm backend (measured: 5.1 vs 0.5 ms at 400×1280).
  const XT = tf.transpose(X);
  const Y = tf.oneHot(tf.tensor1d(Array.from(labels), 'int32'), classes).toFloat() as Tensor2D;
  /** The objective and its gradient at theta (weights then bias). */
  const evaluate = (theta: Float64Array): { f: number; g: Float64Array } => {
    // tidy returns tensors, read after it: returning typed arrays from tidy makes it walk
    // every element looking for tensors (measured: most of the fit's time at 1280×10).
    const [lossT, gwT, gbT] = tf.tidy(() => {
      const W = tf.tensor2d(Float32Array.from(theta.subarray(0, d * classes)), [d, classes]);
      const b = tf.tensor1d(Float32Array.from(theta.subarray(d * classes)));
      const logits = tf.add(tf.matMul(X, W), b);
      const logP = tf.logSoftmax(logits);
      const ce = tf.neg(tf.sum(tf.mul(Y, logP))).div(n);
      const loss = tf.add(ce, tf.mul(l2 / 2, tf.sum(tf.square(W))));
      const residual = tf.sub(tf.exp(logP), Y).div(n);
      const gradW = tf.add(tf.matMul(XT, residual), tf.mul(l2, W));
      const gradB = tf.sum(residual, 0);
      return [loss, gradW, gradB];
    });
    const f = lossT.dataSync()[0];
    const gw = gwT.dataSync();
    const gb = gbT.dataSync();
    tf.dispose([lossT, gwT, gbT]);
    const g = new Float64Array(size);
    g.set(gw);
    g.set(gb, d * classes);
    return { f, g };
  };

  try {
    let theta = new Float64Array(size);
    if (opts.start) {
      if (opts.start.weights.length !== d * classes || opts.start.bias.length !== classes) throw new Error('fitLogistic: the start model has another shape');
      theta.set(opts.start.weights);
      theta.set(opts.start.bias, d * classes);
    }
    let { f, g } = evaluate(theta);
    const s: Float64Array[] = [];
    const y: Float64Array[] = [];
    let iterations = 0;
    while (iterations < maxIterations && maxAbs(g) > tolerance) {
      // Two-loop recursion: direction = −H·g with H built from the last `memory` pairs.
      const q = Float64Array.from(g);
      const alpha: number[] = [];
      for (let i = s.length - 1; i >= 0; i--) {
        const a = dot(s[i], q) / dot(y[i], s[i]);
        alpha[i] = a;
        for (let j = 0; j < size; j++) q[j] -= a * y[i][j];
      }
      const gamma = s.length ? dot(s.at(-1)!, y.at(-1)!) / dot(y.at(-1)!, y.at(-1)!) : 1 / Math.max(1, Math.sqrt(dot(g, g)));
      for (let j = 0; j < size; j++) q[j] *= gamma;
      for (let i = 0; i < s.length; i++) {
        const beta = dot(y[i], q) / dot(y[i], s[i]);
        for (let j = 0; j < size; j++) q[j] += s[i][j] * (alpha[i] - beta);
      }
      const direction = q.map((v) => -v);
      let slope = dot(g, direction);
      if (slope >= 0) {
        // Not a descent direction (curvature information went stale): restart from steepest descent.
        s.length = 0;
        y.length = 0;
        for (let j = 0; j < size; j++) direction[j] = -g[j] / Math.max(1, Math.sqrt(dot(g, g)));
        slope = dot(g, direction);
      }
      // Backtracking until the Armijo condition holds.
      let step = 1;
      let next = theta;
      let trial = { f, g };
      for (let tries = 0; tries < 40; tries++) {
        next = theta.map((v, j) => v + step * direction[j]);
        trial = evaluate(next);
        if (trial.f <= f + 1e-4 * step * slope) break;
        step /= 2;
      }
      const sk = next.map((v, j) => v - theta[j]);
      const yk = trial.g.map((v, j) => v - g[j]);
      if (dot(sk, yk) > 1e-12) {
        s.push(sk);
        y.push(yk);
        if (s.length > memory) {
          s.shift();
          y.shift();
        }
      }
      const improved = f - trial.f;
      theta = next;
      ({ f, g } = trial);
      iterations++;
      if (improved <= 1e-14 * Math.max(1, Math.abs(f))) break;
    }
    return {
      weights: theta.slice(0, d * classes),
      bias: theta.slice(d * classes),
      features: d,
      classes,
      iterations,
      gradientMax: maxAbs(g),
    };
  } finally {
    X.dispose();
    XT.dispose();
    Y.dispose();
  }
}

/** Class probabilities, count×classes, row-major. */
export function predictLogistic(model: LogisticModel, x: Float32Array): Float64Array {
  const { features: d, classes: c } = model;
  const n = x.length / d;
  const out = new Float64Array(n * c);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let k = 0; k < c; k++) {
      let z = model.bias[k];
      for (let j = 0; j < d; j++) z += x[i * d + j] * model.weights[j * c + k];
      out[i * c + k] = z;
      max = Math.max(max, z);
    }
    let sum = 0;
    for (let k = 0; k < c; k++) sum += out[i * c + k] = Math.exp(out[i * c + k] - max);
    for (let k = 0; k < c; k++) out[i * c + k] /= sum;
  }
  return out;
}

/** Fraction of rows whose most probable class is the label. */
export function accuracyOf(probabilities: Float64Array, labels: ArrayLike<number>, classes: number): number {
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let k = 1; k < classes; k++) if (probabilities[i * classes + k] > probabilities[i * classes + best]) best = k;
    if (best === labels[i]) correct++;
  }
  return labels.length ? correct / labels.length : 0;
}

/** Mean and standard deviation per feature, fitted on some rows (shared/ml/features.ts, as vector models do): applied to any. */
export function standardiser(x: Float32Array, count: number): (rows: Float32Array) => Float32Array {
  const d = x.length / count;
  const scaling = fitFeatureScaling(x, count, d);
  return (rows) => standardiseFeatures(rows, d, scaling);
}

const rowsOf = (x: Float32Array, d: number, index: number[]) => {
  const out = new Float32Array(index.length * d);
  index.forEach((r, n) => out.set(x.subarray(r * d, (r + 1) * d), n * d));
  return out;
};

export interface CvScore {
  l2: number;
  mean: number;
  sd: number;
}

export interface CvPathOptions {
  /** λ values; tried strongest first. */
  l2Grid: readonly number[];
  /** @default 5 */
  k?: number;
  /** @default 42 */
  seed?: number;
  /** Gradient tolerance of each fit. @default fitLogistic's */
  tolerance?: number;
  /** Maps a fold's standardised fitting and held-out rows to the features the fits read (e.g. the rows' span). @default as they are */
  features?: (fit: Float32Array, held: Float32Array, nFit: number, nHeld: number) => Promise<{ fit: Float32Array; held: Float32Array }>;
  /**
   * Stops after a fold once no λ can end with a mean accuracy of at least this, even if
   * every fold left were all right (see cannotReach): the scores are then over the folds
   * done, and `folds` says how many. @default never stops early
   */
  stopBelow?: number;
}

/**
 * The highest mean over `k` folds that per-fold scores (`done` so far) can still end
 * with: each fold left at its most, `max` (1 for an accuracy).
 */
export function bestPossibleMean(scores: readonly number[], k: number, max = 1): number {
  return (scores.reduce((a, b) => a + b, 0) + (k - scores.length) * max) / k;
}

/**
 * Whether per-fold accuracies can no longer average `target` or more, even if every fold
 * left were all right. No statistics, no risk: a candidate stopped on this could not
 * have reached the target.
 */
export function cannotReach(accuracies: readonly number[], k: number, target: number): boolean {
  return bestPossibleMean(accuracies, k) < target - 1e-12;
}

/**
 * Held-out accuracy of every λ of the grid by stratified k-fold cross-validation (labels
 * < 0 left out). Folds outside, λ inside: each fold's standardisation is fitted once on
 * its fitting rows, and each fit starts from the one before it on the same rows (λ
 * descending: from the simplest model towards the least regularised), which is the same
 * optimum in fewer iterations. On a tie the larger λ (the simpler model) is best.
 */
export async function crossValidatePath(
  x: Float32Array,
  labels: ArrayLike<number>,
  classes: number,
  opts: CvPathOptions,
): Promise<{ scores: CvScore[]; best: CvScore; k: number; folds: number }> {
  const d = x.length / labels.length;
  const grid = [...opts.l2Grid].sort((a, b) => b - a);
  const folds = stratifiedFolds(labels, opts.k ?? 5, opts.seed ?? 42);
  const accs: number[][] = grid.map(() => []);
  for (let f = 0; f < folds.k; f++) {
    const { fit, held } = foldSplit(folds, f);
    const xFit = rowsOf(x, d, fit);
    const standardise = standardiser(xFit, fit.length);
    let fitRows = standardise(xFit);
    let heldRows = standardise(rowsOf(x, d, held));
    if (opts.features) ({ fit: fitRows, held: heldRows } = await opts.features(fitRows, heldRows, fit.length, held.length));
    const yFit = fit.map((i) => labels[i]);
    const yHeld = held.map((i) => labels[i]);
    let previous: LogisticModel | undefined;
    for (const [g, l2] of grid.entries()) {
      previous = await fitLogistic(fitRows, yFit, classes, { l2, start: previous, tolerance: opts.tolerance });
      accs[g].push(accuracyOf(predictLogistic(previous, heldRows), yHeld, classes));
    }
    const target = opts.stopBelow;
    if (target !== undefined && f < folds.k - 1 && accs.every((a) => cannotReach(a, folds.k, target))) break;
  }
  const scores: CvScore[] = grid.map((l2, g) => {
    const mean = accs[g].reduce((a, b) => a + b, 0) / accs[g].length;
    const sd = Math.sqrt(accs[g].reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, accs[g].length - 1));
    return { l2, mean, sd };
  });
  // Strictly better only: on a tie the larger λ (earlier in the grid) stays.
  const best = scores.reduce((a, b) => (b.mean > a.mean + 1e-12 ? b : a));
  return { scores, best, k: folds.k, folds: accs[0].length };
}

/**
 * The reference: stratified k-fold cross-validation over an L2 grid (features standardised
 * on each fold's fitting rows), then a refit on every row with the best λ (ties go to the
 * larger λ, the simpler model). Returns the scores per λ and the refitted model with its standardiser.
 */
export async function crossValidatedLogistic(
  x: Float32Array,
  labels: ArrayLike<number>,
  classes: number,
  opts: { l2Grid?: number[]; k?: number; seed?: number } = {},
): Promise<{ scores: CvScore[]; best: CvScore; model: LogisticModel; standardise: (rows: Float32Array) => Float32Array }> {
  const { scores, best } = await crossValidatePath(x, labels, classes, { ...opts, l2Grid: opts.l2Grid ?? [1e-4, 1e-3, 1e-2, 1e-1, 1] });
  const standardise = standardiser(x, labels.length);
  const model = await fitLogistic(standardise(x), labels, classes, { l2: best.l2 });
  return { scores, best, model, standardise };
}
