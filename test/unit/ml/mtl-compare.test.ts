import { describe, expect, it, vi } from 'vitest';
import * as train from '../../../shared/ml/train.js';
import { compareWithSingleTask, withTargetStatistics } from '../../../shared/ml/mtl-evaluate.js';
import type { TaskHead } from '../../../shared/schemas/model.js';

// The real trainer, watched: which options each single-task model was trained with.
vi.mock('../../../shared/ml/train.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../../shared/ml/train.js')>();
  return { ...actual, trainHeads: vi.fn(actual.trainHeads) };
});

function split(n: number, phase: number): train.HeadSplit {
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
  it('trains each single-task model with the multi-task run\'s epoch selection', async () => {
    // Prepare: a validation split too small to choose epochs by, so the run trains the full schedule.
    const data = { train: split(40, 0), validation: split(6, 5) };
    const heads = withTargetStatistics(
      [
        { name: 'shape', type: 'classification', auxiliary: false, labels: ['left', 'right'] },
        { name: 'value', type: 'regression', auxiliary: false, size: 1 },
      ] satisfies TaskHead[],
      data.train,
    );
    const trainHeads = vi.mocked(train.trainHeads);
    trainHeads.mockClear();

    // Act
    await compareWithSingleTask({ embeddingSize: 2, heads, sharing: { method: 'hard', trunk: [4] }, data, test: split(10, 9), shared: {}, training: { epochs: 3, batchSize: 8, patience: 1, selectOnValidation: false } });

    // Assess
    expect(trainHeads).toHaveBeenCalledTimes(2);
    for (const call of trainHeads.mock.calls) expect(call[2]).toMatchObject({ selectOnValidation: false, epochs: 3, patience: 1 });
    const results = await Promise.all(trainHeads.mock.results.map((r) => r.value as ReturnType<typeof train.trainHeads>));
    for (const r of results) expect(r.epochsRun).toBeGreaterThanOrEqual(1);
  });
});
