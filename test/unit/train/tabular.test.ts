import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preprocessDataset } from '../../../functions/preprocess/core.js';
import { runTrainingJob } from '../../../functions/train/core.js';
import { LINEAR_BASELINE_METHOD } from '../../../shared/ml/baseline.js';
import { readMetadata, versionPrefix } from '../../../shared/models/registry.js';
import { getJson } from '../../../shared/ports/object-store.js';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { tempStore } from '../../helpers/temp-store.js';
import { FakeJobRunner } from '../data/helpers.js';

/** Features on three scales, one value missing now and then; every task kind reads them. */
function line(i: number): string {
  const u = (k: number) => Math.abs(Math.sin((i + 1) * 12.9898 + k * 78.233) * 43758.5453) % 1;
  const [a, b, c] = [u(1), 1000 * u(2), u(3) - 0.5];
  const tags = [...(a > 0.5 ? ['tall'] : []), ...(b > 500 ? ['rich'] : [])];
  return JSON.stringify({
    features: [a, i % 9 === 4 ? null : b, i % 5 === 2 ? null : c],
    labels: { kind: a + b / 1000 > 1 ? 'big' : 'small', tags, score: 2 * a - b / 500 },
  });
}

/**
 * Tabular data through preprocessing and the training job, in process: every task
 * kind at once, under soft sharing and under GradNorm (hard sharing).
 */
describe('vector datasets from preprocessing to a published model', () => {
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  const jobs = new FakeJobRunner();

  beforeAll(async () => {
    ({ store, cleanup } = await tempStore('tl-tabular-'));
  });
  afterAll(async () => cleanup());

  const cases: Array<[string, Record<string, unknown>]> = [
    ['soft sharing', { sharing: { method: 'soft', tower: [16], l2: 0.01 } }],
    ['hard sharing with GradNorm', { sharing: { method: 'hard', trunk: [16] }, lossWeighting: { method: 'gradnorm' } }],
  ];
  for (const [name, extra] of cases) {
    it(`${name}: classification, multilabel and regression all learn, with the train standardisation stored and a linear baseline`, async () => {
      // Prepare
      const dataset = name.startsWith('soft') ? 'table-soft' : 'table-gn';
      await store.put(`datasets/${dataset}/manifest.jsonl`, Array.from({ length: 200 }, (_, i) => line(i)).join('\n'));
      const spec = {
        input: { type: 'vector' },
        base: 'none',
        tasks: [
          { name: 'kind', type: 'classification' },
          { name: 'tags', type: 'multilabel' },
          { name: 'score', type: 'regression' },
        ],
        training: { epochs: 60, batchSize: 16, learningRate: 0.01, patience: 20 },
        ...extra,
      };
      await store.put(`datasets/${dataset}/train.json`, JSON.stringify(spec));

      // Act
      const prepared = await preprocessDataset({ bucket: 'local', key: `datasets/${dataset}/train.json` }, { store, jobs });
      if (prepared.outcome !== 'submitted') throw new Error(JSON.stringify(prepared));
      const result = await runTrainingJob({ jobId: prepared.jobId, preparedPrefix: prepared.preparedPrefix }, { store, statusIntervalMs: 0 });

      // Assess
      expect(result.ok, JSON.stringify(result)).toBe(true);
      const meta = await readMetadata(store, dataset, (result as { version: string }).version);
      expect(meta?.input).toMatchObject({ type: 'vector', size: 3, mean: expect.any(Array), std: expect.any(Array) });
      if (meta?.input.type !== 'vector') throw new Error('not a vector model');
      expect(meta.input.std![1]).toBeGreaterThan(100); // the second feature spans 0–1000
      const m = meta.metrics as Record<string, Record<string, number>>;
      expect(m.kind.accuracy).toBeGreaterThan(0.8);
      expect(m.tags.microF1).toBeGreaterThan(0.7);
      expect(m.score.r2).toBeGreaterThan(0.7);
      // "Does the network pay?": a linear model on the same standardised split, every task compared.
      const report = await getJson<Record<string, any>>(store, `${versionPrefix(dataset, meta.version)}/report.json`);
      expect(report.transfer.baseline.method).toBe(LINEAR_BASELINE_METHOD);
      expect(Object.keys(report.transfer.baseline.tasks).sort()).toEqual(['kind', 'score', 'tags']);
      expect(report.transfer.baseline.verdict).toMatch(/the linear baseline/i);
      expect(report.transfer.baseline.verdict).not.toMatch(/transfer/i);
    });
  }
});
