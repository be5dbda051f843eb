import { describe, expect, it } from 'vitest';
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { loadTf } from '../../../shared/tf/loader.js';
import { buildHeadModel, outputTaskNames, towerLayerName } from '../../../shared/ml/architectures.js';
import { regressionStats } from '../../../shared/ml/task-kinds.js';
import type { Split } from '../../../shared/ml/split.js';
import { trainModel, trainingObjective } from '../../../shared/ml/train.js';
import { evaluateTasks, withTargetStatistics } from '../../../shared/ml/mtl-evaluate.js';
import type { TaskHead } from '../../../shared/schemas/model.js';
import type { LossWeighting, Sharing } from '../../../shared/schemas/spec.js';

const heads: TaskHead[] = [
  { name: 'shape', type: 'classification', auxiliary: false, labels: ['a', 'b', 'c'] },
  { name: 'tags', type: 'multilabel', auxiliary: false, labels: ['x', 'y'] },
  { name: 'box', type: 'regression', auxiliary: true, size: 2 },
];

/**
 * Three clusters in 8 dimensions; tags: x when the class is 0 or 1, y when feature 3 > 0.5;
 * box: two linear functions of the input. A third of the records lack their shape label
 * (three in a row, every class), every 4th its tags, every 5th its box: nothing is filled in for them.
 */
function data(n: number, offset = 0): Split {
  const size = 8;
  const x = new Float32Array(n * size);
  const shape = new Int32Array(n);
  const tags = new Float32Array(n * 2);
  const box = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    for (let j = 0; j < size; j++) x[i * size + j] = (j % 3 === c ? 1 : 0) + 0.3 * Math.sin((i + offset) * 12.9898 + j * 78.233);
    shape[i] = Math.floor(i / 3) % 3 === 1 ? -1 : c;
    if (i % 4 === 0) tags.fill(Number.NaN, i * 2, i * 2 + 2);
    else tags.set([c < 2 ? 1 : 0, x[i * size + 3] > 0.5 ? 1 : 0], i * 2);
    if (i % 5 === 0) box.fill(Number.NaN, i * 2, i * 2 + 2);
    else box.set([10 + 5 * x[i * size] - 3 * x[i * size + 1], 100 * x[i * size + 2]], i * 2);
  }
  return { x, count: n, targets: { shape, tags, box } };
}

const softmax = (z: number[]) => {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

async function weightsOf(model: LayersModel, layer: string): Promise<number[][]> {
  return Promise.all(
    model
      .getLayer(layer)
      .getWeights()
      .map(async (w) => Array.from(await w.data())),
  );
}

describe('multi-task heads', () => {
  it('builds hard sharing with one output per task of the right shape and activation', async () => {
    // Prepare
    const { tf } = await loadTf();
    const model = await buildHeadModel({ embeddingSize: 8, tasks: heads, sharing: { method: 'hard', trunk: [6] }, dropout: 0 });

    // Act
    const x = tf.ones([4, 8]);
    const out = model.predict(x) as Tensor[];

    // Assess
    expect(outputTaskNames(model)).toEqual(['shape', 'tags', 'box']);
    expect(out.map((o) => o.shape)).toEqual([
      [4, 3],
      [4, 2],
      [4, 2],
    ]);
    (await out[0].sum(-1).data()).forEach((s) => expect(s).toBeCloseTo(1, 5));
    (await out[1].data()).forEach((p) => expect(p > 0 && p < 1).toBe(true));
    expect(model.layers.filter((l) => l.name.startsWith('trunk_'))).toHaveLength(1);
    [x, ...out].forEach((t) => t.dispose());
    model.dispose();
  });

  it('builds soft sharing as one tower per task, each with the spec sizes', async () => {
    const model = await buildHeadModel({ embeddingSize: 8, tasks: heads, sharing: { method: 'soft', tower: [6, 4], l2: 0.1 }, dropout: 0 });
    for (const h of heads) {
      expect(model.getLayer(towerLayerName(h.name, 0)).outputShape).toEqual([null, 6]);
      expect(model.getLayer(towerLayerName(h.name, 1)).outputShape).toEqual([null, 4]);
    }
    expect(model.layers.some((l) => l.name.startsWith('trunk_'))).toBe(false);
    expect(model.outputs.map((o) => o.shape)).toEqual([
      [null, 3],
      [null, 2],
      [null, 2],
    ]);
    model.dispose();
  });
});

describe('the multi-task objective', () => {
  it('masks missing labels: equals the loss computed by hand over the labelled records only', async () => {
    // Prepare: no hidden layer, known weights, 3 records, each missing a different task.
    const { tf } = await loadTf();
    const tasks: TaskHead[] = [
      { name: 'shape', type: 'classification', auxiliary: false, labels: ['a', 'b', 'c'] },
      { name: 'tags', type: 'multilabel', auxiliary: false, labels: ['x', 'y'] },
      { name: 'box', type: 'regression', auxiliary: false, size: 1, mean: [10], std: [2] },
    ];
    const model = await buildHeadModel({ embeddingSize: 2, tasks, sharing: { method: 'hard', trunk: [] }, dropout: 0 });
    const W = {
      shape: [
        [0.5, -0.2, 0.1],
        [0.3, 0.8, -0.6],
      ],
      tags: [
        [1, -1],
        [0.5, 0.25],
      ],
      box: [[2], [-1]],
    };
    const b = { shape: [0.1, 0, -0.1], tags: [0, 0.2], box: [0.5] };
    for (const t of tasks) model.getLayer(`head_${t.name}`).setWeights([tf.tensor2d(W[t.name as keyof typeof W]), tf.tensor1d(b[t.name as keyof typeof b])]);
    const x = [
      [1, 2],
      [-1, 0.5],
      [0.3, -0.7],
    ];
    const split: Split = {
      x: Float32Array.from(x.flat()),
      count: 3,
      targets: {
        shape: Int32Array.from([2, -1, 0]),
        tags: Float32Array.from([1, 0, Number.NaN, Number.NaN, 1, 1]),
        box: Float32Array.from([Number.NaN, 13, 7]),
      },
    };
    const lin = (row: number[], w: number[][], bias: number[]) => bias.map((bj, j) => bj + row.reduce((a, xi, i) => a + xi * w[i][j], 0));

    // Act
    const value = await trainingObjective(model, split, { tasks, lossWeights: { shape: 1, tags: 2, box: 0.5 } });

    // Assess: cross-entropy over records 0 and 2, BCE over 0 and 2, squared error (standardised) over 1 and 2.
    const ce = [0, 2].map((r) => -Math.log(softmax(lin(x[r], W.shape, b.shape))[[2, -1, 0][r]]));
    const tagTruth = [[1, 0], [], [1, 1]];
    const bce = [0, 2].map(
      (r) =>
        lin(x[r], W.tags, b.tags)
          .map(sigmoid)
          .reduce((a, p, j) => a - (tagTruth[r][j] ? Math.log(p) : Math.log(1 - p)), 0) / 2,
    );
    const se = [1, 2].map((r) => (lin(x[r], W.box, b.box)[0] - ([0, 13, 7][r] - 10) / 2) ** 2);
    const mean = (xs: number[]) => xs.reduce((a, v) => a + v, 0) / xs.length;
    expect(value.tasks.shape).toBeCloseTo(mean(ce), 5);
    expect(value.tasks.tags).toBeCloseTo(mean(bce), 5);
    expect(value.tasks.box).toBeCloseTo(mean(se), 5);
    expect(value.penalty).toBe(0);
    expect(value.total).toBeCloseTo(mean(ce) + 2 * mean(bce) + 0.5 * mean(se), 5);
    model.dispose();
  });

  it('adds the soft-sharing penalty λ·Σ‖W_a − W_b‖² over corresponding tower layers, as computed by hand', async () => {
    // Prepare: three towers of two layers, their weights moved apart by different amounts.
    const { tf } = await loadTf();
    const sharing: Sharing = { method: 'soft', tower: [3, 2], l2: 0.25 };
    const model = await buildHeadModel({ embeddingSize: 8, tasks: heads, sharing, dropout: 0, seed: 9 });
    const before = await trainingObjective(model, data(6), { tasks: withTargetStatistics(heads, data(6)), sharing });
    heads.forEach((h, t) =>
      [0, 1].forEach((i) => {
        const layer = model.getLayer(towerLayerName(h.name, i));
        layer.setWeights(layer.getWeights().map((w, k) => tf.tidy(() => w.add(tf.randomUniform(w.shape, -1, 1, 'float32', 100 * t + 10 * i + k)))));
      }),
    );

    // Act
    const value = await trainingObjective(model, data(6), { tasks: withTargetStatistics(heads, data(6)), sharing });

    // Assess
    let expected = 0;
    for (const i of [0, 1]) {
      const w = await Promise.all(heads.map((h) => weightsOf(model, towerLayerName(h.name, i))));
      for (let a = 0; a < 3; a++) for (let c = a + 1; c < 3; c++) w[a].forEach((wa, k) => wa.forEach((v, j) => (expected += (v - w[c][k][j]) ** 2)));
    }
    expect(before.penalty).toBe(0); // towers start from the same weights
    expect(expected).toBeGreaterThan(1);
    expect(value.penalty).toBeCloseTo(0.25 * expected, 3);
    expect(value.total).toBeCloseTo(value.tasks.shape + value.tasks.tags + value.tasks.box + value.penalty, 4);
    model.dispose();
  });
});

describe('trainModel on several tasks with partial labels', () => {
  const cases: Array<[string, Sharing, LossWeighting]> = [
    ['hard sharing, static weights', { method: 'hard', trunk: [16] }, { method: 'static' }],
    ['soft sharing, uncertainty weighting', { method: 'soft', tower: [16], l2: 0.01 }, { method: 'uncertainty' }],
    ['hard sharing, DWA', { method: 'hard', trunk: [16] }, { method: 'dwa', temperature: 2 }],
    ['hard sharing, GradNorm', { method: 'hard', trunk: [16] }, { method: 'gradnorm', alpha: 1.5, learningRate: 0.025 }],
  ];
  for (const [name, sharing, lossWeighting] of cases) {
    it(`${name}: the loss goes down, every task learns, and no tensor is left behind`, async () => {
      // Prepare
      const { tf } = await loadTf();
      const tensorsBefore = tf.memory().numTensors;
      const train = data(90);
      const validation = data(45, 1000);
      const tasks = withTargetStatistics(heads, train);
      const model = await buildHeadModel({ embeddingSize: 8, tasks, sharing, dropout: 0, seed: 3 });

      // Act
      const result = await trainModel(
        model,
        { train, validation },
        { tasks, sharing, lossWeighting, epochs: 40, batchSize: 16, learningRate: 0.02, patience: 40 },
      );
      const metrics = await evaluateTasks(model, tasks, validation);

      // Assess
      const first = result.history[0];
      const last = result.history[result.history.length - 1];
      for (const t of heads) expect(last[`loss_${t.name}`], t.name).toBeLessThan(first[`loss_${t.name}`] * 0.6);
      expect(result.history[result.bestEpoch].val_loss).toBeLessThan(first.val_loss * 0.6);
      expect(metrics.shape).toMatchObject({ type: 'classification' });
      expect(metrics.shape && 'accuracy' in metrics.shape && metrics.shape.accuracy).toBeGreaterThan(0.9);
      expect(metrics.shape?.count).toBe(30); // 45 records, a third unlabelled
      expect(metrics.box && 'r2' in metrics.box && metrics.box.r2).toBeGreaterThan(0.5);
      expect(Object.keys(result.taskWeights).sort()).toEqual(['box', 'shape', 'tags']);
      if (lossWeighting.method === 'static') expect(result.taskWeights).toEqual({ shape: 1, tags: 1, box: 1 });
      // A learned or dynamic weighting moves the weights during the fit (at any one epoch DWA may sit near 1).
      else expect(result.history.some((h) => heads.some((t) => Math.abs(h[`weight_${t.name}`] - 1) > 0.01))).toBe(true);
      if (sharing.method === 'soft') expect(last.penalty).toBeGreaterThan(0);
      model.dispose();
      expect(tf.memory().numTensors).toBe(tensorsBefore);
    });
  }

  it('resumes the weighting state from a checkpoint', async () => {
    // Prepare: stop after 3 epochs, keep the checkpoint's state.
    const train = data(30);
    const tasks = withTargetStatistics(heads, train);
    const model = await buildHeadModel({ embeddingSize: 8, tasks, sharing: { method: 'hard', trunk: [8] }, dropout: 0 });
    let state: import('../../../shared/ml/train.js').TrainState | undefined;
    await trainModel(
      model,
      { train },
      { tasks, lossWeighting: { method: 'uncertainty' }, epochs: 3, patience: 10, learningRate: 0.05, onEpoch: (_e, _l, cp) => void (state = cp.state) },
    );

    // Act
    const resumed = await trainModel(
      model,
      { train },
      { tasks, lossWeighting: { method: 'uncertainty' }, epochs: 4, patience: 10, learningRate: 0.05, resume: { state: state! } },
    );

    // Assess: the learned log-variances carried over (they start at 0, so weights of 1 or ½ otherwise).
    expect(Object.keys(state!.weighting?.logVariances ?? {})).toEqual(['shape', 'tags', 'box']);
    expect(resumed.epochsRun).toBe(4);
    expect(Math.abs(resumed.history[3].weight_shape - 1)).toBeGreaterThan(0.05);
    model.dispose();
  });
});

describe('regression statistics', () => {
  it('skips unlabelled rows and never divides by a zero std', () => {
    const stats = regressionStats(Float32Array.from([1, 5, Number.NaN, Number.NaN, 3, 5]), 3);
    expect(stats).toEqual({ mean: [2, 5], std: [1, 1] });
  });
});

describe('sparse task labels in trainModel', () => {
  it('uncertainty weighting leaves the log-variance of a task without labels in the batch unchanged', async () => {
    // Prepare: "box" has no label in any batch; the other tasks have theirs.
    const train = data(32);
    train.targets.box = new Float32Array(32 * 2).fill(Number.NaN);
    const tasks = withTargetStatistics(heads, data(32));
    const model = await buildHeadModel({ embeddingSize: 8, tasks, sharing: { method: 'hard', trunk: [8] }, dropout: 0, seed: 1 });
    let logVariances: Record<string, number> | undefined;

    // Act
    const result = await trainModel(
      model,
      { train },
      {
        tasks,
        lossWeighting: { method: 'uncertainty' },
        epochs: 5,
        batchSize: 8,
        patience: 10,
        learningRate: 0.05,
        onEpoch: (_e, _l, cp) => void (logVariances = cp.state.weighting?.logVariances),
      },
    );

    // Assess: s_box stays at its start (0), so box keeps the regression weight ½; the labelled tasks moved.
    expect(logVariances!.box).toBe(0);
    expect(result.taskWeights.box).toBeCloseTo(0.5, 9);
    expect(Math.abs(logVariances!.shape)).toBeGreaterThan(0.01);
    model.dispose();
  });

  it("averages a task's epoch loss over its labelled records, not over batches", async () => {
    // Prepare: "tags" labelled on 4 of 24 records, so most batches of 4 lack it; a zero
    // learning rate keeps the weights, so the epoch loss must equal the loss on the split.
    const train = data(24);
    for (let i = 4; i < 24; i++) train.targets.tags.fill(Number.NaN, i * 2, i * 2 + 2);
    const tasks = withTargetStatistics(heads, train);
    const model = await buildHeadModel({ embeddingSize: 8, tasks, sharing: { method: 'hard', trunk: [8] }, dropout: 0, seed: 4 });
    const expected = await trainingObjective(model, train, { tasks });

    // Act
    const result = await trainModel(model, { train }, { tasks, epochs: 1, batchSize: 4, learningRate: 0 });

    // Assess
    for (const t of heads) expect(result.history[0][`loss_${t.name}`], t.name).toBeCloseTo(expected.tasks[t.name], 5);
    model.dispose();
  });
});
