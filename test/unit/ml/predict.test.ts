import { describe, expect, it } from 'vitest';
import type { LayersModel } from '@tensorflow/tfjs';
import { loadTf } from '../../../shared/tf/loader.js';
import { predictTasks, selectTasks, UnknownTaskError } from '../../../shared/ml/predict.js';
import type { TaskHead } from '../../../shared/schemas/model.js';

const heads: TaskHead[] = [
  { name: 'species', type: 'classification', auxiliary: false, labels: ['cat', 'dog', 'fox'] },
  { name: 'indoor', type: 'classification', auxiliary: true, labels: ['no', 'yes'] },
];

/** A model whose outputs are softmax(x·W) with fixed weights, so expected scores are known. */
async function fixedModel(): Promise<LayersModel> {
  const { tf } = await loadTf();
  const input = tf.input({ shape: [3] });
  const s = tf.layers.dense({ units: 3, activation: 'softmax', useBias: false, name: 'head_species', weights: [tf.eye(3).mul(4)] }).apply(input);
  const i = tf.layers
    .dense({
      units: 2,
      activation: 'softmax',
      useBias: false,
      name: 'head_indoor',
      weights: [
        tf.tensor2d([
          [1, 0],
          [0, 1],
          [0, 0],
        ]),
      ],
    })
    .apply(input);
  return tf.model({ inputs: input, outputs: [s, i] as never });
}

describe('predictTasks', () => {
  it('returns the main tasks with the top label, its score and the top-k scores in order', async () => {
    // Prepare
    const model = await fixedModel();
    const x = Float32Array.from([0, 1, 0, /* second */ 0, 0, 1]);

    // Act
    const out = await predictTasks(model, heads, x, 2, { topK: 2 });

    // Assess
    expect(out).toHaveLength(2);
    expect(Object.keys(out[0])).toEqual(['species']); // auxiliary left out
    const p0 = out[0].species as { label: string; score: number; scores: Array<{ label: string; score: number }> };
    const e4 = Math.exp(4);
    expect(p0.label).toBe('dog');
    expect(p0.score).toBeCloseTo(e4 / (e4 + 2), 5);
    expect(p0.scores).toHaveLength(2);
    expect(p0.scores[0]).toEqual({ label: 'dog', score: p0.score });
    expect(p0.scores[1].score).toBeCloseTo(1 / (e4 + 2), 5);
    expect((out[1].species as { label: string }).label).toBe('fox');
    model.dispose();
  });

  it('includes an auxiliary task only when the request names it', async () => {
    const model = await fixedModel();
    const out = await predictTasks(model, heads, Float32Array.from([1, 0, 0]), 1, { topK: 5, tasks: ['indoor'] });
    expect(Object.keys(out[0])).toEqual(['indoor']);
    const p = out[0].indoor as { label: string; scores: unknown[] };
    expect(p.label).toBe('no');
    expect(p.scores).toHaveLength(2); // top-k capped at the number of classes
    model.dispose();
  });

  it('throws UnknownTaskError naming the unknown tasks', () => {
    expect(() => selectTasks(heads, ['species', 'color'])).toThrow(UnknownTaskError);
    expect(() => selectTasks(heads, ['color'])).toThrow(/"color".*"species", "indoor"/);
  });
});
