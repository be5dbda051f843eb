import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { tempStore } from '../../helpers/temp-store.js';
import { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { encodeShard } from '../../../shared/data/shards.js';
import { jobStatusKey } from '../../../shared/jobs/status.js';
import { trainModel } from '../../../shared/ml/train.js';
import { getJson, putJson, type ObjectStore } from '../../../shared/ports/object-store.js';
import type { DatasetReport, SplitName } from '../../../shared/schemas/report.js';
import { TrainSpecSchema } from '../../../shared/schemas/spec.js';
import { runTrainingJob } from '../../../functions/train/core.js';

const SIZE = 4;
const SPLITS: SplitName[] = ['train', 'validation', 'test'];

interface Missing {
  /** Splits in which the task has no label at all. */
  tags?: SplitName[];
  value?: SplitName[];
}

/**
 * A prepared vector dataset with three tasks: shape (classification a/b by the sign
 * of feature 0), tags (multilabel: x when feature 1 > 0) and value (regression 2·f2).
 */
async function writeDataset(store: ObjectStore, missing: Missing): Promise<{ preparedPrefix: string; jobId: string }> {
  const prefix = 'prepared/mtl/h1';
  const per: Record<SplitName, number> = { train: 30, validation: 10, test: 10 };
  const spec = TrainSpecSchema.parse({
    input: { type: 'vector' },
    base: 'none',
    tasks: [{ name: 'shape' }, { name: 'tags', type: 'multilabel' }, { name: 'value', type: 'regression', auxiliary: true }],
    training: { epochs: 4, batchSize: 8, learningRate: 0.01, patience: 2 },
  });
  const shards: DatasetReport['shards'] = [];
  const labelled = { shape: 0, tags: 0, value: 0 };
  const classes: Record<string, number> = { a: 0, b: 0 };
  const tagClasses: Record<string, number> = { x: 0, y: 0 };
  let seed = 0;
  for (const split of SPLITS) {
    const n = per[split];
    const data = new Float32Array(n * SIZE);
    const records = Array.from({ length: n }, (_, i) => {
      const f = Array.from({ length: SIZE }, (_, j) => Math.sin(seed * 1.3 + j * 2.1 + j * j));
      seed++;
      data.set(f, i * SIZE);
      const shape = f[0] < 0 ? 'a' : 'b';
      const tags = [...(f[1] > 0 ? ['x'] : []), ...(f[3] > 0.5 ? ['y'] : [])];
      classes[shape]++;
      labelled.shape++;
      const labels: Record<string, string | string[] | number | null> = { shape };
      if (!missing.tags?.includes(split)) {
        labels.tags = tags;
        labelled.tags++;
        tags.forEach((t) => tagClasses[t]++);
      }
      if (!missing.value?.includes(split)) {
        labels.value = 2 * f[2];
        labelled.value++;
      }
      return { key: `datasets/mtl/${split}-${i}`, labels };
    });
    const key = `${prefix}/${split}-0.shard`;
    await store.put(key, encodeShard({ split, dtype: 'float32', shape: [SIZE], records, data }));
    shards.push({ key, split, count: n });
  }
  const total = per.train + per.validation + per.test;
  const report: DatasetReport = {
    dataset: 'mtl',
    hash: 'h1',
    layout: 'manifest',
    spec,
    inputShape: [SIZE],
    records: { total, used: total, skipped: 0 },
    splits: per,
    tasks: {
      shape: { type: 'classification', labelled: labelled.shape, classes },
      tags: { type: 'multilabel', labelled: labelled.tags, classes: tagClasses },
      value: { type: 'regression', labelled: labelled.value, size: 1 },
    },
    skipped: [],
    shards,
    createdAt: new Date().toISOString(),
  };
  await putJson(store, `${prefix}/report.json`, report);
  const jobId = 'train-mtl-h1';
  const t = new Date().toISOString();
  await putJson(store, jobStatusKey(jobId), {
    jobId,
    model: 'mtl',
    dataset: 'mtl',
    datasetHash: 'h1',
    state: 'submitted',
    progress: 0,
    metrics: {},
    createdAt: t,
    updatedAt: t,
  });
  return { preparedPrefix: prefix, jobId };
}

describe('the training job on multi-task data', () => {
  // The real trainer, watched: which models the job trains and how.
  const trainer = vi.fn(trainModel);
  let cleanup: () => Promise<void>;
  let store: FsObjectStore;
  beforeEach(async () => {
    ({ store, cleanup } = await tempStore('tl-mtl-job-'));
    trainer.mockClear();
  });
  afterEach(async () => cleanup());

  it('fails, naming the task and its label counts per split, when a task has no train labels', async () => {
    // Prepare: the auxiliary regression task is labelled in validation and test only.
    const { preparedPrefix, jobId } = await writeDataset(store, { value: ['train'] });

    // Act
    const result = await runTrainingJob({ jobId, preparedPrefix }, { store, statusIntervalMs: 0, trainer });

    // Assess: nothing trained, nothing published (only loading ran: the stage timings say so).
    expect(Object.keys(result.timings ?? {}).sort()).toEqual(['loadMs', 'totalMs']);
    expect({ ...result, timings: undefined }).toEqual({
      ok: false,
      error: {
        code: 'NO_TRAIN_LABELS',
        message:
          'auxiliary task "value" has no labelled record in the train split (labelled: train 0, validation 10, test 10); label some train records or remove the task',
      },
    });
    expect(trainer).not.toHaveBeenCalled();
    expect(await store.list('models/')).toEqual([]);
  });

  it('trains the single-task models with the same epoch selection, and says when thresholds could not be tuned', async () => {
    // Prepare: 10 validation records (too few to choose epochs by); none carries tags.
    const { preparedPrefix, jobId } = await writeDataset(store, { tags: ['validation'] });

    // Act
    const result = await runTrainingJob({ jobId, preparedPrefix }, { store, statusIntervalMs: 0, trainer });

    // Assess
    expect(result).toMatchObject({ ok: true, model: 'mtl' });
    const calls = trainer.mock.calls;
    expect(calls.length).toBe(3); // the multi-task model, then one per main task (shape, tags)
    for (const call of calls) expect(call[2]).toMatchObject({ selectOnValidation: false });
    const report = await getJson<{ tasks: Record<string, { thresholdsTuned?: boolean; thresholds?: number[] }>; sharingComparison?: object }>(
      store,
      `models/mtl/${(result as { version: string }).version}/report.json`,
    );
    expect(report.tasks.tags).toMatchObject({ thresholdsTuned: false, thresholds: [0.5, 0.5] });
    expect(report.tasks.shape.thresholdsTuned).toBeUndefined();
    expect(Object.keys(report.sharingComparison ?? {}).sort()).toEqual(['shape', 'tags']);
  });
});
