import type { Split } from '../../../shared/ml/split.js';
import { describe, expect, it, vi } from 'vitest';
import { trainModel as realTrainModel } from '../../../shared/ml/train.js';
import { compareWithSingleTask, withTargetStatistics } from '../../../shared/ml/mtl-evaluate.js';
import type { TaskHead } from '../../../shared/schemas/model.js';

function split(n: number, phase: number): Split {
  const x = new Float32Array(n * 2);
  const shape = new Int32Array(n);
  const value = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = Math.sin(i * 1.7 + phase);
    const b = Math.cos(i * 2.3 + phase);
    x.set([a, b], i * 2);
    shape[i] = a < 0 ? 0 : 1;
    value[i] = 2 * a - b;
  }
  return { x, count: n, targets: { shape, value } };
}

describe('compareWithSingleTask', () => {
  it("trains each single-task model with the multi-task run's epoch selection", async () => {
    // Prepare: a validation split too small to choose epochs by, so the run trains the full schedule.
    const data = { train: split(40, 0), validation: split(6, 5) };
    const heads = withTargetStatistics(
      [
        { name: 'shape', type: 'classification', auxiliary: false, labels: ['left', 'right'] },
        { name: 'value', type: 'regression', auxiliary: false, size: 1 },
      ] satisfies TaskHead[],
      data.train,
    );
    // The real trainer, watched: which options each single-task model is trained with.
    const trainModel = vi.fn(realTrainModel);

    // Act
    await compareWithSingleTask({
      embeddingSize: 2,
      heads,
      sharing: { method: 'hard', trunk: [4] },
      data,
      test: split(10, 9),
      shared: {},
      training: { epochs: 3, batchSize: 8, patience: 1, selectOnValidation: false },
      trainer: trainModel,
    });

    // Assess
    expect(trainModel).toHaveBeenCalledTimes(2);
    for (const call of trainModel.mock.calls) expect(call[2]).toMatchObject({ selectOnValidation: false, epochs: 3, patience: 1 });
    const results = await Promise.all(trainModel.mock.results.map((r) => r.value as ReturnType<typeof realTrainModel>));
    for (const r of results) expect(r.epochsRun).toBeGreaterThanOrEqual(1);
  });
});
