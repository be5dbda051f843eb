import { describe, expect, it } from 'vitest';
import type { Tensor } from '@tensorflow/tfjs';
import { loadTf } from '../../../shared/tf/loader.js';
import { buildHeadModel, outputTaskNames, UnsupportedArchitectureError } from '../../../shared/ml/architectures.js';
import { UnsupportedTaskTypeError, LabelError } from '../../../shared/ml/task-kinds.js';
import type { TaskHead } from '../../../shared/schemas/model.js';

const tasks: TaskHead[] = [
  { name: 'species', type: 'classification', auxiliary: false, labels: ['a', 'b', 'c'] },
  { name: 'size', type: 'classification', auxiliary: true, labels: ['s', 'l'] },
];

describe('buildHeadModel (hard sharing)', () => {
  it('builds the trunk and one softmax output per task, in task order', async () => {
    // Act
    const model = await buildHeadModel({ embeddingSize: 16, tasks, sharing: { method: 'hard', trunk: [8, 4] }, dropout: 0.1, seed: 1 });

    // Assess
    const { tf } = await loadTf();
    expect(model.inputs[0].shape).toEqual([null, 16]);
    expect(outputTaskNames(model)).toEqual(['species', 'size']);
    expect(model.getLayer('trunk_0').outputShape).toEqual([null, 8]);
    expect(model.getLayer('trunk_1').outputShape).toEqual([null, 4]);
    const out = model.predict(tf.ones([5, 16])) as Tensor[];
    expect(out.map((o) => o.shape)).toEqual([
      [5, 3],
      [5, 2],
    ]);
    const sums = (await out[0].sum(-1).data()) as Float32Array;
    sums.forEach((s) => expect(s).toBeCloseTo(1, 5));
    out.forEach((o) => o.dispose());
    model.dispose();
  });

  it('with an empty trunk, connects the outputs to the embedding directly', async () => {
    const model = await buildHeadModel({ embeddingSize: 4, tasks: tasks.slice(0, 1), sharing: { method: 'hard', trunk: [] }, dropout: 0 });
    expect(model.layers.map((l) => l.name)).toEqual(['embedding', 'head_species']);
    model.dispose();
  });

  it('gives the same initial weights for the same seed', async () => {
    const a = await buildHeadModel({ embeddingSize: 4, tasks, sharing: { method: 'hard', trunk: [3] }, seed: 7 });
    const b = await buildHeadModel({ embeddingSize: 4, tasks, sharing: { method: 'hard', trunk: [3] }, seed: 7 });
    expect(await a.getWeights()[0].array()).toEqual(await b.getWeights()[0].array());
    a.dispose();
    b.dispose();
  });

  it('refuses unknown sharing methods, unknown task types and single-class tasks with readable errors', async () => {
    await expect(buildHeadModel({ embeddingSize: 4, tasks, sharing: { method: 'cross-stitch' } as never })).rejects.toThrow(UnsupportedArchitectureError);
    await expect(
      buildHeadModel({ embeddingSize: 4, tasks: [{ name: 'box', type: 'ranking' as never, auxiliary: false }], sharing: { method: 'hard', trunk: [] } }),
    ).rejects.toThrow(UnsupportedTaskTypeError);
    await expect(
      buildHeadModel({
        embeddingSize: 4,
        tasks: [{ name: 'x', type: 'classification', auxiliary: false, labels: ['only'] }],
        sharing: { method: 'hard', trunk: [] },
      }),
    ).rejects.toThrow(LabelError);
  });
});
