import { describe, expect, it } from 'vitest';
import type { LayersModel, SymbolicTensor, Tensor } from '@tensorflow/tfjs';
import { loadTf } from '../../../shared/tf/loader.js';
import { buildHeadModel } from '../../../shared/ml/architectures.js';
import { gradNormStep, UnsupportedLossWeightingError } from '../../../shared/ml/loss-weighting.js';
import { lastSharedLayerWeights, trainModel, type TrainState } from '../../../shared/ml/train.js';
import type { TaskHead } from '../../../shared/schemas/model.js';
import { TrainSpecSchema } from '../../../shared/schemas/spec.js';

const heads: TaskHead[] = [
  { name: 'p', type: 'regression', auxiliary: false, size: 1, mean: [0], std: [1] },
  { name: 'q', type: 'regression', auxiliary: false, size: 1, mean: [0], std: [1] },
];

/**
 * x → trunk (1 unit, linear, no bias, W = [0.5, 0.25]ᵀ) → h → p = 2h and q = −h.
 * Everything linear and without biases, so the gradients are easy to write by hand.
 */
async function tinyModel(): Promise<LayersModel> {
  const { tf } = await loadTf();
  const input = tf.input({ shape: [2], name: 'embedding' });
  const kernels: Tensor[] = [];
  const dense = (name: string, kernel: number[][]) => {
    kernels.push(tf.tensor2d(kernel));
    return tf.layers.dense({ units: 1, useBias: false, name, weights: [kernels.at(-1)!] });
  };
  const h = dense('trunk_0', [[0.5], [0.25]]).apply(input) as SymbolicTensor;
  const p = dense('head_p', [[2]]).apply(h) as SymbolicTensor;
  const q = dense('head_q', [[-1]]).apply(h) as SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: [p, q] });
  // The layers hold their own copies of the initial weights.
  kernels.forEach((k) => k.dispose());
  return model;
}

describe('GradNorm (Chen et al., 2018)', () => {
  it('one step of the training loop matches the hand computation', async () => {
    // Prepare: one record x = [1, 2] with targets p = 0, q = 0.5; h = 0.5·1 + 0.25·2 = 1.
    //   p̂ = 2, L_p = (2 − 0)² = 4;   ∇_W L_p = 2·(2 − 0)·2·x = [8, 16],   ‖·‖ = 8√5
    //   q̂ = −1, L_q = (−1 − 0.5)² = 2.25; ∇_W L_q = 2·(−1.5)·(−1)·x = [3, 6], ‖·‖ = 3√5
    // w = (1, 1): G = (8√5, 3√5), Ḡ = 5.5√5. First step: L̃ = 1 for both, r = 1, G* = Ḡ.
    // ∂|G − G*|/∂w = sign(G − G*)·‖∇_W L‖ = (+8√5, −3√5); with learning rate 0.01:
    //   w = (1 − 0.08√5, 1 + 0.03√5), then renormalised to sum to 2.
    const { tf } = await loadTf();
    const before = tf.memory().numTensors;
    const model = await tinyModel();
    const train = { x: Float32Array.from([1, 2]), count: 1, targets: { p: Float32Array.from([0]), q: Float32Array.from([0.5]) } };
    let state: TrainState | undefined;

    // Act: a zero learning rate for the network, so only the task weights move.
    const result = await trainModel(
      model,
      { train },
      {
        tasks: heads,
        lossWeighting: { method: 'gradnorm', alpha: 1.5, learningRate: 0.01 },
        epochs: 1,
        batchSize: 1,
        learningRate: 0,
        onEpoch: (_e, _l, cp) => void (state = cp.state),
      },
    );

    // Assess
    const s5 = Math.sqrt(5);
    const raw = [1 - 0.08 * s5, 1 + 0.03 * s5];
    const sum = raw[0] + raw[1];
    expect(result.taskWeights.p).toBeCloseTo((2 * raw[0]) / sum, 5); // 0.869735
    expect(result.taskWeights.q).toBeCloseTo((2 * raw[1]) / sum, 5); // 1.130265
    expect(state!.weighting?.initialLosses).toEqual({ p: 4, q: 2.25 });
    expect(state!.weighting?.taskWeights?.p).toBeCloseTo(result.taskWeights.p, 9);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('resumes from a checkpoint with the learned weights and the initial losses (hand computation)', async () => {
    // Prepare: the model above, resumed from a state where q started at L_q(0) = 100, so q
    // has trained much faster than p: L̃ = (4/4, 2.25/100) = (1, 0.0225), r = (1.956, 0.044).
    // G* = Ḡ·r^1.5 = (33.6, 0.11): p is now below its target and q above, the opposite of
    // a fresh start, so w = (1 + 0.08√5, 1 − 0.03√5) before renormalising.
    const model = await tinyModel();
    const train = { x: Float32Array.from([1, 2]), count: 1, targets: { p: Float32Array.from([0]), q: Float32Array.from([0.5]) } };
    const state: TrainState = {
      nextEpoch: 0,
      best: Infinity,
      bestEpoch: -1,
      wait: 0,
      history: [],
      weighting: { taskWeights: { p: 1, q: 1 }, initialLosses: { p: 4, q: 100 } },
    };

    // Act
    const result = await trainModel(
      model,
      { train },
      { tasks: heads, lossWeighting: { method: 'gradnorm', alpha: 1.5, learningRate: 0.01 }, epochs: 1, batchSize: 1, learningRate: 0, resume: { state } },
    );

    // Assess
    const s5 = Math.sqrt(5);
    const raw = [1 + 0.08 * s5, 1 - 0.03 * s5];
    expect(result.taskWeights.p).toBeCloseTo((2 * raw[0]) / (raw[0] + raw[1]), 5);
    expect(result.taskWeights.q).toBeCloseTo((2 * raw[1]) / (raw[0] + raw[1]), 5);
    model.dispose();
  });

  it('a later step pulls up the task that trains slowly (hand computation with loss ratios)', () => {
    // Prepare: G = (0.8·10, 1.2·5) = (8, 6), Ḡ = 7; L̃ = (2/4, 1.5/2) = (0.5, 0.75), mean 0.625,
    // r = (0.8, 1.2); G* = 7·r^1.5 = (5.0088, 9.2017). p is above its target, q below:
    // w = (0.8 − 0.01·10, 1.2 + 0.01·5) = (0.7, 1.25), renormalised: ×2/1.95.
    const input = {
      weights: { p: 0.8, q: 1.2 },
      initialLosses: { p: 4, q: 2 },
      batch: { gradNorms: { p: 10, q: 5 }, losses: { p: 2, q: 1.5 }, labelled: { p: true, q: true } },
      alpha: 1.5,
      learningRate: 0.01,
    };

    // Act
    const next = gradNormStep(input);

    // Assess
    expect(next.p).toBeCloseTo((0.7 * 2) / 1.95, 9);
    expect(next.q).toBeCloseTo((1.25 * 2) / 1.95, 9);
  });

  it('in the loop, a task with no label in the batch sits the step out (no error, weights kept)', async () => {
    // Prepare: q unlabelled everywhere
    const model = await tinyModel();
    const train = { x: Float32Array.from([1, 2, 2, 1]), count: 2, targets: { p: Float32Array.from([0, 1]), q: Float32Array.from([NaN, NaN]) } };

    // Act
    const result = await trainModel(
      model,
      { train },
      { tasks: heads, lossWeighting: { method: 'gradnorm', alpha: 1.5, learningRate: 0.01 }, epochs: 2, batchSize: 1, learningRate: 0.01 },
    );

    // Assess
    expect(result.taskWeights).toEqual({ p: 1, q: 1 });
    model.dispose();
  });

  it('leaves the weights alone when fewer than two tasks are labelled in the batch', () => {
    const next = gradNormStep({
      weights: { p: 0.5, q: 1.5 },
      initialLosses: { p: 4, q: 2 },
      batch: { gradNorms: { p: 10, q: 0 }, losses: { p: 2, q: 0 }, labelled: { p: true, q: false } },
      alpha: 1.5,
      learningRate: 0.01,
    });
    expect(next).toEqual({ p: 0.5, q: 1.5 });
  });

  it('finds the last shared layer, and refuses a model without one', async () => {
    // Prepare
    const hard = await buildHeadModel({ embeddingSize: 4, tasks: heads, sharing: { method: 'hard', trunk: [8, 4] }, dropout: 0 });
    const soft = await buildHeadModel({ embeddingSize: 4, tasks: heads, sharing: { method: 'soft', tower: [4], l2: 0.01 }, dropout: 0 });
    const train = { x: new Float32Array(8), count: 2, targets: { p: Float32Array.from([0, 1]), q: Float32Array.from([1, 0]) } };

    // Act
    const found = lastSharedLayerWeights(hard);
    const run = trainModel(soft, { train }, { tasks: heads, lossWeighting: { method: 'gradnorm', alpha: 1.5, learningRate: 0.025 }, epochs: 1 });

    // Assess
    expect(found?.layer).toBe('trunk_1');
    expect(lastSharedLayerWeights(soft)).toBeUndefined();
    await expect(run).rejects.toBeInstanceOf(UnsupportedLossWeightingError);
    await expect(run).rejects.toThrow(/no layer shared by every task trains/);
    hard.dispose();
    soft.dispose();
  });

  it('the spec takes gradnorm with alpha 1.5 by default and rejects a negative alpha', () => {
    const spec = TrainSpecSchema.parse({ lossWeighting: { method: 'gradnorm' } });
    expect(spec.lossWeighting).toEqual({ method: 'gradnorm', alpha: 1.5, learningRate: 0.025 });
    expect(TrainSpecSchema.safeParse({ lossWeighting: { method: 'gradnorm', alpha: -1 } }).success).toBe(false);
  });
});
