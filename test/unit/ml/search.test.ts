import { describe, expect, it } from 'vitest';
import { buildHeadModel, headLayerName } from '../../../shared/ml/architectures.js';
import { fitFeatureScaling, standardiseFeatures } from '../../../shared/ml/features.js';
import { bestPossibleMean, cannotReach, fitLogistic, predictLogistic } from '../../../shared/ml/logistic.js';
import { predictOutputs } from '../../../shared/ml/inference.js';
import { mulberry32 } from '../../../shared/random.js';
import {
  chooseRefitL2,
  crossValidateTask,
  foldScaling,
  L2_REPEATS,
  refitLinear,
  rowSpace,
  searchRepresentations,
  type SearchTask,
} from '../../../shared/ml/search.js';
import { SearchReportSchema } from '../../../shared/schemas/search.js';

/** count×size features: `informative` of them carry the class (its own column set high), the rest noise. */
function features(labels: Int32Array, size: number, informative: number, seed: number, signal = 2): Float32Array {
  const rand = mulberry32(seed);
  const x = new Float32Array(labels.length * size);
  for (let i = 0; i < labels.length; i++) {
    for (let j = 0; j < size; j++) {
      const noise = rand() * 2 - 1;
      x[i * size + j] = noise + (j < informative && j % 3 === labels[i] ? signal : 0);
    }
  }
  return x;
}

const labelsOf = (n: number, classes: number) => Int32Array.from({ length: n }, (_, i) => i % classes);

describe('searchRepresentations', () => {
  it('chooses the representation that carries the labels, lists every candidate and marks the chosen one', async () => {
    const labels = labelsOf(60, 3);
    const task: SearchTask = { name: 'class', classes: 3, labels };
    const result = await searchRepresentations({
      candidates: [
        { name: 'noise', size: 12, x: features(labels, 12, 0, 1) },
        { name: 'signal', size: 12, x: features(labels, 12, 6, 2) },
      ],
      tasks: [task],
    });
    expect(SearchReportSchema.parse(result.report)).toEqual(result.report);
    expect(result.report.chosen).toBe('signal');
    expect(result.chosen).toBe(1);
    const [noise, signal] = result.report.leaderboard;
    expect(signal).toMatchObject({ candidate: 'signal', chosen: true, family: 'linear' });
    expect(noise.chosen).toBe(false);
    expect(signal.cvMean!).toBeGreaterThan(0.9);
    expect(noise.cvMean!).toBeLessThan(0.6);
    expect(result.report.folds).toBe(5);
    expect(result.report.records).toBe(60);
    expect(result.report.verdict).toMatch(/^signal wins by \d+\.\d points over noise/);
  });

  it('breaks a tie in favour of the candidate with fewer features, whatever the order', async () => {
    const labels = labelsOf(30, 3);
    const task: SearchTask = { name: 'class', classes: 3, labels };
    // Both separate the classes perfectly (signal far above the noise): CV accuracy 1 for both.
    const wide = { name: 'wide', size: 9, x: features(labels, 9, 3, 3, 20) };
    const narrow = { name: 'narrow', size: 3, x: features(labels, 3, 3, 4, 20) };
    for (const candidates of [
      [wide, narrow],
      [narrow, wide],
    ]) {
      const result = await searchRepresentations({ candidates, tasks: [task] });
      expect(result.report.leaderboard.map((e) => e.cvMean)).toEqual([1, 1]);
      expect(result.report.chosen).toBe('narrow');
    }
  });

  it('stops a candidate once it can no longer reach the leader, which it could not have beaten', async () => {
    const labels = labelsOf(60, 3);
    const task: SearchTask = { name: 'class', classes: 3, labels };
    const signal = { name: 'signal', size: 12, x: features(labels, 12, 6, 2) };
    const noise = { name: 'noise', size: 12, x: features(labels, 12, 0, 1) };

    const result = await searchRepresentations({ candidates: [signal, noise], tasks: [task] });

    expect(SearchReportSchema.parse(result.report)).toEqual(result.report);
    expect(result.report.chosen).toBe('signal');
    const [first, second] = result.report.leaderboard;
    expect(first.folds).toBeUndefined();
    expect(first.note).toBeUndefined();
    expect(second.folds).toBeLessThan(5);
    expect(second.note).toMatch(new RegExp(`^stopped after ${second.folds} of 5 folds`));
    // Its partial score is not a runner-up's: the verdict does not measure a margin against it.
    expect(result.report.verdict).toBe('signal wins: every other candidate was stopped once it could no longer reach it');
    // Scored on every fold, it ends where the bound said: below the leader.
    const full = await crossValidateTask(noise.x, noise.size, task);
    expect(full.folds).toBe(5);
    expect(full.mean).toBeLessThan(first.cvMean!);
    // The leader is never stopped, whatever comes before it.
    const other = await searchRepresentations({ candidates: [noise, signal], tasks: [task] });
    expect(other.report.leaderboard.map((e) => e.folds)).toEqual([undefined, undefined]);
  });

  it('bounds a mean over folds by the folds left at their best', () => {
    expect(bestPossibleMean([0.5, 0.7], 5)).toBeCloseTo((0.5 + 0.7 + 3) / 5, 12);
    expect(bestPossibleMean([0.2], 3, 1.5)).toBeCloseTo((0.2 + 3) / 3, 12);
    expect(cannotReach([0.4], 5, 0.9)).toBe(true); // at most 0.88
    expect(cannotReach([0.5], 5, 0.9)).toBe(false); // 0.9 is still possible: a tie is not ruled out
    expect(cannotReach([1, 1, 1, 1, 1], 5, 1)).toBe(false);
  });

  it('scores several tasks by the mean of each task’s accuracy over its best candidate', async () => {
    const a = labelsOf(45, 3);
    const b = Int32Array.from(a, (_, i) => Math.floor(i / 3) % 3);
    const tasks: SearchTask[] = [
      { name: 'a', classes: 3, labels: a },
      { name: 'b', classes: 3, labels: b },
    ];
    const onlyA = features(a, 6, 6, 5);
    const mixed = new Float32Array(45 * 6);
    const fa = features(a, 3, 3, 6, 1);
    const fb = features(b, 3, 3, 7, 2);
    for (let i = 0; i < 45; i++) {
      mixed.set(fa.subarray(i * 3, i * 3 + 3), i * 6);
      mixed.set(fb.subarray(i * 3, i * 3 + 3), i * 6 + 3);
    }
    const result = await searchRepresentations({
      candidates: [
        { name: 'only-a', size: 6, x: onlyA },
        { name: 'mixed', size: 6, x: mixed },
      ],
      tasks,
    });
    const board = result.report.leaderboard;
    const best = { a: Math.max(...board.map((e) => e.tasks!.a.cvMean)), b: Math.max(...board.map((e) => e.tasks!.b.cvMean)) };
    for (const e of board) expect(e.cvMean).toBeCloseTo((e.tasks!.a.cvMean / best.a + e.tasks!.b.cvMean / best.b) / 2, 3);
    expect(result.report.chosen).toBe(board.reduce((x, y) => (y.cvMean! > x.cvMean! ? y : x)).candidate);
    expect(result.report.chosen).toBe('mixed');
  });

  it('stops at the time budget: later candidates are listed as not tried and never computed', async () => {
    const labels = labelsOf(30, 3);
    let computed = false;
    const result = await searchRepresentations({
      candidates: [
        { name: 'first', size: 6, x: features(labels, 6, 3, 8) },
        {
          name: 'late',
          size: 6,
          x: async () => {
            computed = true;
            return features(labels, 6, 3, 9);
          },
        },
      ],
      tasks: [{ name: 'class', classes: 3, labels }],
      budgetMs: 0,
    });
    expect(computed).toBe(false);
    expect(result.report.chosen).toBe('first');
    expect(result.report.leaderboard[1]).toEqual({ candidate: 'late', size: 6, family: 'linear', chosen: false, note: 'not tried: time budget spent' });
  });

  it('uses fewer folds when the smallest class has fewer than five records', async () => {
    const labels = Int32Array.from([0, 0, 0, 1, 1, 1, 1, 1, 1, 1]);
    const result = await searchRepresentations({
      candidates: [{ name: 'x', size: 4, x: features(labels, 4, 4, 10) }],
      tasks: [{ name: 't', classes: 2, labels }],
    });
    expect(result.report.folds).toBe(3);
  });
});

describe('refitLinear', () => {
  it('serves the logistic model refitted on every labelled record, standardisation folded into the weights', async () => {
    const labels = labelsOf(40, 3);
    labels[5] = -1; // a record without this task's label is left out of the fit
    const size = 5;
    const x = features(labels, size, 5, 11);
    for (let i = 0; i < x.length; i += size) x[i] = x[i] * 50 + 300; // a feature on another scale
    const model = await buildHeadModel({
      embeddingSize: size,
      tasks: [{ name: 'class', type: 'classification', auxiliary: false, labels: ['a', 'b', 'c'] }],
      sharing: { method: 'hard', trunk: [] },
      dropout: 0,
    });
    try {
      const fits = await refitLinear(model, x, size, [{ name: 'class', classes: 3, labels }], { class: 0.1 }, headLayerName);
      expect(fits.class.records).toBe(39);
      // The reference: the same fit on standardised rows, predicted on standardised rows.
      const index = [...labels.keys()].filter((i) => labels[i] >= 0);
      const rows = new Float32Array(index.length * size);
      index.forEach((r, k) => rows.set(x.subarray(r * size, (r + 1) * size), k * size));
      const scaling = fitFeatureScaling(rows, index.length, size);
      const reference = await fitLogistic(
        standardiseFeatures(rows, size, scaling),
        index.map((i) => labels[i]),
        3,
        { l2: 0.1 },
      );
      const expected = predictLogistic(reference, standardiseFeatures(x, size, scaling));
      const served = (await predictOutputs(model, x, labels.length))[0];
      for (let i = 0; i < expected.length; i++) expect(served[i]).toBeCloseTo(expected[i], 4);
    } finally {
      model.dispose();
    }
  });

  it('foldScaling turns weights on standardised features into weights on raw ones', () => {
    const scaling = { mean: [10, -2], std: [5, 0.5] };
    const folded = foldScaling({ weights: Float64Array.from([1, 2, 3, 4]), bias: Float64Array.from([0.5, -0.5]), features: 2, classes: 2 }, scaling);
    const raw = [20, 1];
    const z = raw.map((v, j) => (v - scaling.mean[j]) / scaling.std[j]);
    for (let k = 0; k < 2; k++) {
      const onStandardised = [0.5, -0.5][k] + z[0] * [1, 2][k] + z[1] * [3, 4][k];
      const onRaw = folded.bias[k] + raw[0] * folded.kernel[k] + raw[1] * folded.kernel[2 + k];
      expect(onRaw).toBeCloseTo(onStandardised, 5);
    }
  });
});

describe('rowSpace', () => {
  it('solves the same L2 logistic problem on n×n features when there are fewer rows than features', async () => {
    const labels = labelsOf(24, 3);
    const n = 24;
    const d = 60;
    const raw = features(labels, d, 9, 12);
    const x = standardiseFeatures(raw, d, fitFeatureScaling(raw, n, d));
    const held = standardiseFeatures(features(labelsOf(9, 3), d, 9, 13), d, fitFeatureScaling(raw, n, d));
    const primal = await fitLogistic(x, Array.from(labels), 3, { l2: 0.1, tolerance: 1e-7, maxIterations: 2000 });
    const space = await rowSpace(x, n, d);
    try {
      const onZ = await fitLogistic(space.z, Array.from(labels), 3, { l2: 0.1, tolerance: 1e-7, maxIterations: 2000 });
      // Held-out rows mapped into Z give the primal model's probabilities...
      const viaZ = predictLogistic(onZ, space.map(held, 9));
      const direct = predictLogistic(primal, held);
      for (let i = 0; i < direct.length; i++) expect(viaZ[i]).toBeCloseTo(direct[i], 3);
      // ...and so do the weights carried back onto the original features.
      const back = predictLogistic({ ...onZ, weights: space.toWeights(onZ.weights, 3), features: d }, held);
      for (let i = 0; i < direct.length; i++) expect(back[i]).toBeCloseTo(direct[i], 3);
    } finally {
      space.dispose();
    }
  });
});

describe('chooseRefitL2', () => {
  it('averages every λ over more draws of the folds and keeps the best (ties to the stronger penalty)', async () => {
    const labels = labelsOf(45, 3);
    const task: SearchTask = { name: 'class', classes: 3, labels };
    const x = features(labels, 10, 4, 21, 0.8);
    const first = await crossValidateTask(x, 10, task, { seed: 5 });
    const refined = await chooseRefitL2(x, 10, task, first.scores, { seed: 5 });
    // The same means by hand: this draw plus L2_REPEATS others, seeds 5 + 1000 r.
    const draws = [first.scores];
    for (let r = 1; r <= L2_REPEATS; r++) draws.push((await crossValidateTask(x, 10, task, { seed: 5 + 1000 * r })).scores);
    const means = first.scores.map((s, g) => ({ l2: s.l2, mean: draws.reduce((a, d) => a + d[g].mean, 0) / draws.length }));
    expect(refined.means.map((m) => m.l2)).toEqual(means.map((m) => m.l2));
    refined.means.forEach((m, g) => expect(m.mean).toBeCloseTo(means[g].mean, 12));
    const top = Math.max(...means.map((m) => m.mean));
    expect(refined.l2).toBe(means.find((m) => m.mean > top - 1e-12)!.l2);
  });
});
