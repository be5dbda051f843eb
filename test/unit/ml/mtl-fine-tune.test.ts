import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { tempStore } from '../../helpers/temp-store.js';
import type { LayersModel } from '@tensorflow/tfjs';
import { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { encodeShard } from '../../../shared/data/shards.js';
import { jobStatusKey } from '../../../shared/jobs/status.js';
import * as evaluate from '../../../shared/ml/mtl-evaluate.js';
import { readMetadata } from '../../../shared/models/registry.js';
import { putJson } from '../../../shared/ports/object-store.js';
import type { DatasetReport, SplitName } from '../../../shared/schemas/report.js';
import { TrainSpecSchema } from '../../../shared/schemas/spec.js';
import { runTrainingJob } from '../../../functions/train/core.js';
import { image, SHAPE, writeTinyBase } from '../transfer/fixtures.js';

// The real tuner, watched: which model and inputs the job tunes thresholds on.
vi.mock('../../../shared/ml/mtl-evaluate.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../../shared/ml/mtl-evaluate.js')>();
  return { ...actual, tuneThresholds: vi.fn(actual.tuneThresholds) };
});

const TAGS: string[][] = [['blue'], ['blue', 'green'], []];

describe('multilabel thresholds of a fine-tuned model', () => {
  let cleanup: () => Promise<void>;
  let store: FsObjectStore;
  beforeEach(async () => {
    ({ store, cleanup } = await tempStore('tl-mtl-ft-'));
    await writeTinyBase(store);
  });
  afterEach(async () => cleanup());

  it('are tuned on the served (fine-tuned) model, with the validation inputs it reads', async () => {
    // Prepare: images of 3 kinds, each with its tag set; fine-tuning cuts the base at c1.
    const per = SHAPE[0] * SHAPE[1] * SHAPE[2];
    const prefix = 'prepared/tags/t1';
    const counts: Record<SplitName, number> = { train: 18, validation: 9, test: 6 };
    const spec = TrainSpecSchema.parse({
      base: 'tiny',
      tasks: [{ name: 'tags', type: 'multilabel' }],
      fineTune: { layers: 2, epochs: 2, learningRate: 0.001 },
      training: { epochs: 3, batchSize: 8, learningRate: 0.01, patience: 3 },
    });
    const shards: DatasetReport['shards'] = [];
    let seed = 0;
    for (const split of ['train', 'validation', 'test'] as SplitName[]) {
      const n = counts[split];
      const data = new Uint8Array(n * per);
      const records = Array.from({ length: n }, (_, i) => {
        data.set(image(i % 3, seed++), i * per);
        return { key: `datasets/tags/${split}-${i}.png`, labels: { tags: TAGS[i % 3] } };
      });
      await store.put(`${prefix}/${split}-0.shard`, encodeShard({ split, dtype: 'uint8', shape: [...SHAPE], records, data }));
      shards.push({ key: `${prefix}/${split}-0.shard`, split, count: n });
    }
    const total = counts.train + counts.validation + counts.test;
    const report: DatasetReport = {
      dataset: 'tags',
      hash: 't1',
      layout: 'manifest',
      spec,
      inputShape: [...SHAPE],
      records: { total, used: total, skipped: 0 },
      splits: counts,
      tasks: { tags: { type: 'multilabel', labelled: total, classes: { blue: 22, green: 11 } } },
      skipped: [],
      shards,
      createdAt: new Date().toISOString(),
    };
    await putJson(store, `${prefix}/report.json`, report);
    const t = new Date().toISOString();
    await putJson(store, jobStatusKey('train-tags-t1'), {
      jobId: 'train-tags-t1',
      model: 'tags',
      dataset: 'tags',
      datasetHash: 't1',
      state: 'submitted',
      progress: 0,
      metrics: {},
      createdAt: t,
      updatedAt: t,
    });

    // Act
    const result = await runTrainingJob({ jobId: 'train-tags-t1', preparedPrefix: prefix }, { store, statusIntervalMs: 0 });

    // Assess: the tuned model reads what the published one reads (cut activations, not base embeddings).
    expect(result).toMatchObject({ ok: true });
    const meta = (await readMetadata(store, 'tags', (result as { version: string }).version))!;
    expect(meta.base.cut).toBeDefined();
    const [model, , split] = vi.mocked(evaluate.tuneThresholds).mock.calls[0] as [LayersModel, unknown, { x: Float32Array; count: number }];
    expect(model.inputs[0].shape[1]).toBe(meta.base.embeddingSize);
    expect(split).toMatchObject({ count: 9 });
    expect(split.x.length).toBe(9 * meta.base.embeddingSize!);
    expect(meta.tasks[0].thresholds).toHaveLength(2);
  });
});
