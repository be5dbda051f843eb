import { describe, expect, it } from 'vitest';
import { loadTf } from '../../../shared/tf/loader.js';
import { buildHeadModel } from '../../../shared/ml/architectures.js';
import { classificationKind } from '../../../shared/ml/task-kinds.js';
import type { Split } from '../../../shared/ml/split.js';
import { trainModel, type EpochLogs } from '../../../shared/ml/train.js';

/** Three separable clusters in 8 dimensions, plus noise from a fixed sequence. */
function clusters(n: number, offset = 0): Split {
  const size = 8;
  const x = new Float32Array(n * size);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    for (let j = 0; j < size; j++) x[i * size + j] = (j % 3 === y[i] ? 1 : 0) + 0.3 * Math.sin((i + offset) * 12.9898 + j * 78.233);
  }
  return { x, count: n, targets: { class: y } };
}

const heads = [{ name: 'class', type: 'classification' as const, auxiliary: false, labels: ['a', 'b', 'c'] }];

describe('trainModel', () => {
  it('fits a tiny head: the loss goes down and validation accuracy is high', async () => {
    // Prepare
    const { tf } = await loadTf();
    const tensorsBefore = tf.memory().numTensors;
    const model = await buildHeadModel({ embeddingSize: 8, tasks: heads, sharing: { method: 'hard', trunk: [8] }, dropout: 0, seed: 3 });
    const seen: number[] = [];

    // Act
    const result = await trainModel(
      model,
      { train: clusters(60), validation: clusters(30, 1000) },
      { epochs: 25, batchSize: 10, learningRate: 0.03, patience: 25, onEpoch: (e) => void seen.push(e) },
    );

    // Assess
    expect(seen).toEqual([...Array(25).keys()]);
    const losses = result.history.map((h) => h.loss);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] * 0.5);
    expect(result.history[result.bestEpoch].val_acc).toBeGreaterThan(0.9);
    expect(result.history[0]).toHaveProperty('val_acc_class');
    // Training accuracy per epoch too (what the learning curves draw beside the validation one): it rises to the training data's fit.
    expect(result.history.every((h) => h.acc_class >= 0 && h.acc_class <= 1 && h.acc === h.acc_class)).toBe(true);
    expect(result.history.at(-1)!.acc).toBeGreaterThan(0.9);
    expect(result.history.at(-1)!.acc).toBeGreaterThan(result.history[0].acc);
    model.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore); // no data, optimizer or best-weight tensors left behind
  });

  it('stops early and restores the weights of the best epoch', async () => {
    // Prepare: validation labels are all shifted by one class, so val_loss soon rises while train loss falls.
    const model = await buildHeadModel({ embeddingSize: 8, tasks: heads, sharing: { method: 'hard', trunk: [16] }, dropout: 0, seed: 5 });
    const val = clusters(30, 500);
    val.targets.class = Int32Array.from(val.targets.class, (c) => (c + 1) % 3);
    await loadTf();
    let bestWeights: number[][] = [];
    let best = Infinity;

    // Act
    const result = await trainModel(
      model,
      { train: clusters(60), validation: val },
      {
        epochs: 60,
        batchSize: 10,
        learningRate: 0.05,
        patience: 3,
        onEpoch: async (_e, logs: EpochLogs) => {
          if (logs.val_loss < best) {
            best = logs.val_loss;
            bestWeights = await Promise.all(model.getWeights().map(async (w) => Array.from(await w.data())));
          }
        },
      },
    );

    // Assess
    expect(result.stoppedEarly).toBe(true);
    expect(result.epochsRun).toBe(result.bestEpoch + 4);
    const now = await Promise.all(model.getWeights().map(async (w) => Array.from(await w.data())));
    expect(now).toEqual(bestWeights);
    model.dispose();
  });

  it('masks records without a label: the loss is the mean over labelled rows only', async () => {
    // Prepare: p = softmax output for two rows, the second row unlabelled.
    const { tf } = await loadTf();
    const yTrue = tf.tensor2d([
      [0, 1, 0],
      [0, 0, 0],
    ]);
    const yPred = tf.tensor2d([
      [0.2, 0.5, 0.3],
      [0.9, 0.05, 0.05],
    ]);

    // Act
    const loss = (await classificationKind.loss(tf, yTrue, yPred).data())[0];

    // Assess: only the first row counts, and it is not divided by 2.
    expect(loss).toBeCloseTo(-Math.log(0.5), 5);
    expect(classificationKind.targetMatrix(Int32Array.from([1, -1]), 3)).toEqual(Float32Array.from([0, 1, 0, 0, 0, 0]));
    [yTrue, yPred].forEach((t) => t.dispose());
  });
});

describe('trainModel when an allocation fails', () => {
  it('frees the data, optimizer and weighting tensors it made before the failure', async () => {
    // Prepare: uncertainty weighting makes variables; the validation inputs are one value short, so
    // their tensor fails after the train tensors exist (fine-tuning used to leak them).
    const { tf } = await loadTf();
    const model = await buildHeadModel({ embeddingSize: 8, tasks: heads, sharing: { method: 'hard', trunk: [8] }, dropout: 0, seed: 3 });
    const validation = clusters(6);
    const before = tf.memory().numTensors;

    // Act
    const run = trainModel(
      model,
      { train: clusters(12), validation: { ...validation, x: validation.x.subarray(1) } },
      { epochs: 2, lossWeighting: { method: 'uncertainty' }, inferenceMode: true },
    );

    // Assess
    await expect(run).rejects.toThrow();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});
