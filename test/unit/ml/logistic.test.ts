import { describe, expect, it } from 'vitest';
import { foldSplit, stratifiedFolds, TooFewForFoldsError } from '../../../shared/ml/folds.js';
import { accuracyOf, crossValidatedLogistic, fitLogistic, predictLogistic } from '../../../shared/ml/logistic.js';
import { mulberry32 } from '../../../shared/random.js';

/** Gaussian clusters: `perClass` points around a centre per class, in `d` dimensions. */
function clusters(perClass: number, classes: number, d: number, seed: number, spread = 0.6): { x: Float32Array; y: number[] } {
  const rand = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  const x = new Float32Array(perClass * classes * d);
  const y: number[] = [];
  for (let c = 0; c < classes; c++)
    for (let i = 0; i < perClass; i++) {
      const row = y.length;
      for (let j = 0; j < d; j++) x[row * d + j] = (j % classes === c ? 2 : 0) + spread * gauss();
      y.push(c);
    }
  return { x, y };
}

describe('stratifiedFolds', () => {
  it('spreads every class over the folds evenly, leaves unlabelled records out, and repeats for a seed', () => {
    const labels = [...Array(23).fill(0), ...Array(12).fill(1), ...Array(7).fill(2), -1, -1];
    const a = stratifiedFolds(labels, 5, 7);
    expect(a.k).toBe(5);
    expect(a.fold.at(-1)).toBe(-1);
    for (const cls of [0, 1, 2]) {
      const perFold = [0, 1, 2, 3, 4].map((f) => labels.filter((y, i) => y === cls && a.fold[i] === f).length);
      expect(Math.max(...perFold) - Math.min(...perFold), `class ${cls}: ${perFold.join(',')}`).toBeLessThanOrEqual(1);
    }
    const sizes = [0, 1, 2, 3, 4].map((f) => foldSplit(a, f).held.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    expect(sizes.reduce((s, v) => s + v, 0)).toBe(42);
    expect(Array.from(stratifiedFolds(labels, 5, 7).fold)).toEqual(Array.from(a.fold));
    expect(Array.from(stratifiedFolds(labels, 5, 8).fold)).not.toEqual(Array.from(a.fold));
    const { fit, held } = foldSplit(a, 2);
    expect(new Set([...fit, ...held]).size).toBe(42);
    expect(fit.some((i) => held.includes(i))).toBe(false);
  });

  it('uses fewer folds when the smallest class is smaller than k, and refuses what cannot be cross-validated', () => {
    expect(stratifiedFolds([0, 0, 0, 0, 0, 0, 1, 1, 1], 5).k).toBe(3);
    expect(() => stratifiedFolds([0, 0, 0, 1], 5)).toThrow(TooFewForFoldsError);
    expect(() => stratifiedFolds([0, 0, 0, -1], 5)).toThrow(/two labelled classes/);
  });
});

describe('fitLogistic', () => {
  it('reaches the optimum of a case solved by hand: 1-D, two classes, symmetric data', async () => {
    // x = +1 is class 1 and x = −1 class 0, 10 each. By symmetry the biases are equal and
    // w0 = −w1; with u = w1 − w0 the objective is −log σ(u) + λu²/4, stationary where
    // 1 − σ(u) = λu/2. Solved here by bisection, independently of the fit.
    const l2 = 0.1;
    const x = Float32Array.from({ length: 20 }, (_, i) => (i < 10 ? -1 : 1));
    const y = Array.from({ length: 20 }, (_, i) => (i < 10 ? 0 : 1));
    let lo = 0;
    let hi = 100;
    for (let i = 0; i < 200; i++) {
      const mid = (lo + hi) / 2;
      if (1 - 1 / (1 + Math.exp(-mid)) - (l2 * mid) / 2 > 0) lo = mid;
      else hi = mid;
    }
    const model = await fitLogistic(x, y, 2, { l2, tolerance: 1e-7 });
    expect(model.weights[1] - model.weights[0]).toBeCloseTo(lo, 4);
    expect(model.weights[0]).toBeCloseTo(-model.weights[1], 4);
    expect(model.bias[1] - model.bias[0]).toBeCloseTo(0, 4);
  });

  it('ends where the gradient, computed here in float64 without tfjs, is zero', async () => {
    const { x, y } = clusters(15, 3, 6, 11, 1.5);
    const l2 = 0.05;
    const model = await fitLogistic(x, y, 3, { l2, tolerance: 1e-6 });
    const n = y.length;
    const d = 6;
    const p = predictLogistic(model, x);
    const grad = new Float64Array(d * 3);
    for (let i = 0; i < n; i++)
      for (let k = 0; k < 3; k++) for (let j = 0; j < d; j++) grad[j * 3 + k] += (x[i * d + j] * (p[i * 3 + k] - (y[i] === k ? 1 : 0))) / n;
    for (let j = 0; j < d * 3; j++) grad[j] += l2 * model.weights[j];
    expect(Math.max(...grad.map(Math.abs))).toBeLessThan(1e-4);
    // float32 arithmetic inside tfjs bounds how close it gets: about 1e-5 of the gradient's scale.
    expect(model.gradientMax).toBeLessThan(1e-4);
  });
});

describe('warm starts along the λ path', () => {
  it('reach the same optimum as a cold start, in fewer iterations', async () => {
    // More features than records, weak signal: the case of embeddings at a few images per class.
    const { x, y } = clusters(12, 5, 200, 21, 3);
    const strong = await fitLogistic(x, y, 5, { l2: 0.1, tolerance: 1e-6 });
    const cold = await fitLogistic(x, y, 5, { l2: 0.01, tolerance: 1e-6 });
    const warm = await fitLogistic(x, y, 5, { l2: 0.01, tolerance: 1e-6, start: strong });
    const gap = Math.max(...cold.weights.map((w, i) => Math.abs(w - warm.weights[i])));
    expect(gap).toBeLessThan(1e-3);
    expect(warm.iterations, `warm ${warm.iterations} vs cold ${cold.iterations}`).toBeLessThan(cold.iterations);
    await expect(fitLogistic(x, y, 5, { l2: 0.01, start: { weights: new Float64Array(3), bias: new Float64Array(5) } })).rejects.toThrow(/another shape/);
  });
});

describe('crossValidatedLogistic', () => {
  it('scores every λ of the grid by stratified CV and refits the best on all records', async () => {
    const train = clusters(12, 3, 8, 5);
    const test = clusters(20, 3, 8, 6);
    const { scores, best, model, standardise } = await crossValidatedLogistic(train.x, train.y, 3, { l2Grid: [1e-3, 1e-1, 10], k: 4 });
    expect(scores.map((s) => s.l2)).toEqual([10, 1e-1, 1e-3]);
    for (const s of scores) expect(s.mean).toBeGreaterThanOrEqual(0);
    expect(best.mean).toBe(Math.max(...scores.map((s) => s.mean)));
    // On a tie the larger λ wins: the first of the (descending) grid with the best mean.
    expect(best.l2).toBe(scores.find((s) => s.mean === best.mean)!.l2);
    expect(accuracyOf(predictLogistic(model, standardise(test.x)), test.y, 3)).toBeGreaterThan(0.9);
  });
});
