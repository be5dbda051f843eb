import { describe, expect, it } from 'vitest';
import { loadTf } from '../../../shared/tf/loader.js';
import { countLabelled, LabelError, multilabelKind, regressionKind, selectTargets } from '../../../shared/ml/task-kinds.js';
import { multilabelMetrics, regressionMetrics } from '../../../shared/ml/metrics.js';
import { createLossCombiner, lossWeightsFor } from '../../../shared/ml/loss-weighting.js';
import { buildHeadModel } from '../../../shared/ml/architectures.js';
import { compareWithSingleTask, evaluateTasks, summaryMetrics, tuneThresholds, withTargetStatistics } from '../../../shared/ml/mtl-evaluate.js';
import { NoTasksRequestedError, predictTasks, selectTasks, UnknownTaskError } from '../../../shared/ml/predict.js';
import type { Split } from '../../../shared/ml/split.js';
import { trainModel } from '../../../shared/ml/train.js';
import type { TaskHead } from '../../../shared/schemas/model.js';

const tagsHead: TaskHead = { name: 'tags', type: 'multilabel', auxiliary: false, labels: ['red', 'round', 'small'] };
const boxHead: TaskHead = { name: 'box', type: 'regression', auxiliary: false, size: 2, mean: [10, 0], std: [2, 4] };

describe('multilabel task kind', () => {
  it('encodes label sets, leaves missing records unlabelled, and rejects unknown classes', () => {
    const y = multilabelKind.encodeLabels([['red', 'small'], null, [], undefined], tagsHead) as Float32Array;
    expect(Array.from(y.subarray(0, 3))).toEqual([1, 0, 1]);
    expect(Array.from(y.subarray(6, 9))).toEqual([0, 0, 0]); // an empty set is a label: none applies
    expect(countLabelled(y, 4)).toBe(2);
    expect(multilabelKind.targetMatrix(y, 3)).toEqual(Float32Array.from([1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    expect(() => multilabelKind.encodeLabels([['blue']], tagsHead)).toThrow(LabelError);
    expect(() => multilabelKind.encodeLabels(['red'], tagsHead)).toThrow(/multilabel/);
  });

  it('predicts the labels at or above their own thresholds, with every score ranked', () => {
    const p = multilabelKind.format(Float32Array.from([0.6, 0.3, 0.2]), { ...tagsHead, thresholds: [0.7, 0.25, 0.5] }, 2);
    expect(p).toEqual({
      labels: ['round'],
      scores: [
        { label: 'red', score: expect.closeTo(0.6, 5) },
        { label: 'round', score: expect.closeTo(0.3, 5) },
      ],
    });
  });
});

describe('regression task kind', () => {
  it('standardises targets for training and predicts in real units', async () => {
    // Prepare
    const { tf } = await loadTf();
    const y = regressionKind.encodeLabels([[12, -4], null, [10, 8]], boxHead) as Float32Array;

    // Act
    const m = regressionKind.targetMatrix(y, 2, boxHead);
    const loss = (
      await regressionKind
        .loss(
          tf,
          tf.tensor2d(m, [3, 2]),
          tf.tensor2d([
            [1, -1],
            [50, 50],
            [0, 1],
          ]),
          tf.tensor1d([1, 0, 1]),
        )
        .data()
    )[0];

    // Assess
    expect(Array.from(m)).toEqual([1, -1, 0, 0, 0, 2]);
    expect(loss).toBeCloseTo((0 + 0 + 0 + 1) / 2 / 2, 6); // row 1 is masked, whatever its output
    expect(regressionKind.format(Float32Array.from([1, -1]), boxHead, 3)).toEqual({ value: [12, -4] });
    expect(() => regressionKind.encodeLabels([[1, 2, 3]], boxHead)).toThrow(/needs 2 values/);
    expect(() => regressionKind.encodeLabels(['big'], boxHead)).toThrow(LabelError);
    expect(Array.from(selectTargets(y, 3, [2, 0]))).toEqual([10, 8, 12, -4]);
  });
});

describe('multilabel and regression metrics', () => {
  it('computes per-label, micro and macro F1 by their definitions', () => {
    // labels a, b; 3 records. a: tp 1, fp 1, fn 0. b: tp 1, fp 0, fn 1.
    const m = multilabelMetrics([1, 1, 0, 1, 0, 0], [1, 1, 1, 0, 0, 0], ['a', 'b']);
    expect(m.count).toBe(3);
    expect(m.perLabel[0]).toMatchObject({ label: 'a', precision: 0.5, recall: 1, support: 1 });
    expect(m.perLabel[0].f1).toBeCloseTo(2 / 3, 6);
    expect(m.perLabel[1]).toMatchObject({ precision: 1, recall: 0.5, support: 2 });
    expect(m.microF1).toBeCloseTo((2 * 2) / (2 * 2 + 1 + 1), 6);
    expect(m.macroF1).toBeCloseTo(2 / 3, 6);
    expect(m.subsetAccuracy).toBeCloseTo(2 / 3, 6);
  });

  it('computes MAE, RMSE and R² per output and overall', () => {
    const m = regressionMetrics([1, 10, 2, 10, 3, 10], [1, 10, 2, 11, 5, 10], 2);
    expect(m.count).toBe(3);
    expect(m.mae).toBeCloseTo(3 / 6, 6);
    expect(m.rmse).toBeCloseTo(Math.sqrt(5 / 6), 6);
    expect(m.perOutput[0].r2).toBeCloseTo(1 - 4 / 2, 6);
    expect(m.perOutput[1].r2).toBe(0); // constant truth, not predicted exactly
    expect(m.r2).toBeCloseTo((-1 + 0) / 2, 6);
  });

  it('reports R² as null with fewer than 2 records, and leaves it out of the summary', () => {
    const m = regressionMetrics([4, 1], [3, 1], 2);
    expect(m).toMatchObject({ count: 1, mae: 0.5, r2: null });
    expect(m.perOutput.map((o) => o.r2)).toEqual([null, null]);
    expect(summaryMetrics({ type: 'regression', ...m })).toEqual({ mae: 0.5, rmse: Math.sqrt(0.5), count: 1 });
    expect(regressionMetrics([], [], 1).r2).toBeNull();
  });
});

describe('loss weightings', () => {
  it('uncertainty: Σ c·exp(−s)·L + s/2 with learned s, regression halved', async () => {
    const { tf } = await loadTf();
    const combiner = createLossCombiner(tf, { method: 'uncertainty' }, [{ name: 'a' }, { name: 'b', type: 'regression', weight: 2 }], {
      logVariances: { a: Math.log(4), b: 0 },
    });
    const total = tf.tidy(() => combiner.combine(tf, { a: tf.scalar(2), b: tf.scalar(3) }).dataSync()[0]);
    expect(total).toBeCloseTo(2 / 4 + Math.log(4) / 2 + 2 * (0.5 * 3 + 0), 5);
    expect(combiner.weights().a).toBeCloseTo(0.25, 6);
    expect(combiner.weights().b).toBeCloseTo(1, 6);
    expect(combiner.variables).toHaveLength(2);
    combiner.dispose();
    expect(lossWeightsFor({ method: 'uncertainty' }, [{ name: 'b', type: 'regression' }])).toEqual({ b: 0.5 });
  });

  it('DWA: 1 each for two epochs, then K·softmax(L(e−1)/L(e−2)/T)', async () => {
    const { tf } = await loadTf();
    const combiner = createLossCombiner(tf, { method: 'dwa', temperature: 2 }, [{ name: 'a' }, { name: 'b' }]);
    combiner.endEpoch({ a: 1, b: 1 });
    expect(combiner.weights()).toEqual({ a: 1, b: 1 });
    combiner.endEpoch({ a: 0.5, b: 1 });
    const ea = Math.exp(0.5 / 2);
    const eb = Math.exp(1 / 2);
    expect(combiner.weights().a).toBeCloseTo((2 * ea) / (ea + eb), 6);
    expect(combiner.weights().b).toBeCloseTo((2 * eb) / (ea + eb), 6);
    expect(combiner.state().epochLosses).toHaveLength(2);
  });
});

/** 2-d points; tags: "left" when x < 0, "up" when y > 0; 1-d value 3x − y. */
function points(n: number, phase: number): Split {
  const x = new Float32Array(n * 2);
  const tags = new Float32Array(n * 2);
  const value = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = Math.sin(i * 1.7 + phase) * 2;
    const b = Math.cos(i * 2.3 + phase) * 2;
    x.set([a, b], i * 2);
    tags.set([a < 0 ? 1 : 0, b > 0 ? 1 : 0], i * 2);
    value[i] = 3 * a - b;
  }
  return { x, count: n, targets: { tags, value } };
}

describe('multi-task evaluation', () => {
  it('tunes thresholds on validation, evaluates per type, and predicts every main task in real units', async () => {
    // Prepare
    const train = points(120, 0);
    const validation = points(40, 7);
    const heads = withTargetStatistics(
      [
        { name: 'tags', type: 'multilabel', auxiliary: false, labels: ['left', 'up'] },
        { name: 'value', type: 'regression', auxiliary: true, size: 1 },
      ],
      train,
    );
    const model = await buildHeadModel({ embeddingSize: 2, tasks: heads, sharing: { method: 'hard', trunk: [16] }, dropout: 0, seed: 2 });
    await trainModel(model, { train, validation }, { tasks: heads, epochs: 60, batchSize: 16, learningRate: 0.03, patience: 60 });

    // Act
    const tuned = await tuneThresholds(model, heads, validation);
    const metrics = await evaluateTasks(model, tuned, validation);
    const predicted = await predictTasks(model, tuned, Float32Array.from([-1.5, 1, 1, -1]), 2, { topK: 2 });
    const withAux = await predictTasks(model, tuned, Float32Array.from([-1.5, 1]), 1, { topK: 2, tasks: ['value'] });

    // Assess: on the split they were tuned on, no label's F1 is below its F1 at 0.5.
    const untuned = await evaluateTasks(model, heads, validation);
    expect(tuned[0].thresholds).toHaveLength(2);
    const f1s = (m: typeof metrics.tags) => (m && m.type === 'multilabel' ? m.perLabel.map((l) => l.f1) : []);
    f1s(metrics.tags).forEach((f1, j) => expect(f1, `label ${j}`).toBeGreaterThanOrEqual(f1s(untuned.tags)[j]));
    expect(metrics.tags).toMatchObject({ type: 'multilabel' });
    expect(metrics.tags && 'microF1' in metrics.tags && metrics.tags.microF1).toBeGreaterThan(0.85);
    expect(metrics.value && 'r2' in metrics.value && metrics.value.r2).toBeGreaterThan(0.8);
    expect(predicted.map((p) => Object.keys(p))).toEqual([['tags'], ['tags']]); // the auxiliary task only when asked
    expect(predicted[0].tags).toMatchObject({ labels: ['left', 'up'] });
    expect(predicted[1].tags).toMatchObject({ labels: [] });
    expect((withAux[0].value as { value: number[] }).value[0]).toBeCloseTo(3 * -1.5 - 1, -0.5);
    model.dispose();
  });

  it('moves a threshold off 0.5 when the scores call for it', async () => {
    // Prepare: one sigmoid unit that scores positives (x = 1) about 0.3 and negatives (x = 0) about 0.1.
    const { tf } = await loadTf();
    const input = tf.input({ shape: [1] });
    const dense = tf.layers.dense({ units: 1, activation: 'sigmoid' });
    const model = tf.model({ inputs: input, outputs: dense.apply(input) as import('@tensorflow/tfjs').SymbolicTensor });
    const logit = (p: number) => Math.log(p / (1 - p));
    dense.setWeights([tf.tensor2d([[logit(0.3) - logit(0.1)]]), tf.tensor1d([logit(0.1)])]);
    const head: TaskHead = { name: 'tag', type: 'multilabel', auxiliary: false, labels: ['on'] };
    const truth = [1, 0, 0, 1, 0, 1, 0, 0];
    const split: Split = { x: Float32Array.from(truth), count: truth.length, targets: { tag: Float32Array.from(truth) } };

    // Act
    const [tuned] = await tuneThresholds(model, [head], split);
    const at05 = await evaluateTasks(model, [head], split);
    const atTuned = await evaluateTasks(model, [tuned], split);

    // Assess: nothing reaches 0.5; a threshold between the two scores separates them.
    expect(tuned.thresholds![0]).toBeGreaterThan(0.1);
    expect(tuned.thresholds![0]).toBeLessThanOrEqual(0.3);
    expect(at05.tag && at05.tag.type === 'multilabel' && at05.tag.microF1).toBe(0);
    expect(atTuned.tag && atTuned.tag.type === 'multilabel' && atTuned.tag.microF1).toBe(1);
    model.dispose();
  });

  it('refuses an empty task list as it refuses an unknown task (the API answers 400)', () => {
    const heads: TaskHead[] = [tagsHead, { ...boxHead, auxiliary: true }];
    expect(() => selectTasks(heads, [])).toThrow(NoTasksRequestedError);
    expect(() => selectTasks(heads, [])).toThrow(UnknownTaskError);
    expect(() => selectTasks(heads, [])).toThrow('"tasks" is empty; name at least one of this model\'s tasks ("tags", "box")');
    expect(selectTasks(heads, undefined)).toEqual([tagsHead]);
  });

  it('compares each main task with a single-task model trained the same way', async () => {
    const train = points(60, 0);
    const validation = points(20, 3);
    const test = points(30, 9);
    const heads = withTargetStatistics(
      [
        { name: 'tags', type: 'multilabel', auxiliary: false, labels: ['left', 'up'] },
        { name: 'value', type: 'regression', auxiliary: false, size: 1 },
      ],
      train,
    );
    const comparison = await compareWithSingleTask({
      embeddingSize: 2,
      heads,
      sharing: { method: 'soft', tower: [8], l2: 0.01 },
      data: { train, validation },
      test,
      shared: { tags: { type: 'multilabel', count: 30, microF1: 0.5, macroF1: 0.5, subsetAccuracy: 0.5, perLabel: [] }, value: undefined },
      training: { epochs: 5, batchSize: 16, learningRate: 0.01, patience: 5 },
    });
    expect(comparison.tags).toMatchObject({ metric: 'microF1', higherIsBetter: true, withSharing: 0.5 });
    expect(comparison.tags.difference).toBeCloseTo(0.5 - comparison.tags.withoutSharing!, 9);
    expect(comparison.value).toMatchObject({ metric: 'rmse', higherIsBetter: false, withSharing: null, difference: null, better: null });
    expect(comparison.value.withoutSharing).toBeGreaterThan(0);
  });
});
