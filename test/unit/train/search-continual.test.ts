import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { runTrainingJob } from '../../../functions/train/core.js';
import { readMetadata } from '../../../shared/models/registry.js';
import { tempStore } from '../../helpers/temp-store.js';
import { getJson } from '../../../shared/ports/object-store.js';
import { VersionReportSchema } from '../../../shared/schemas/version-report.js';
import type { SearchReport } from '../../../shared/schemas/search.js';
import { SHAPE, servedTestAccuracy, writePreparedDataset } from './fixtures.js';
import { readSplit } from '../../../shared/data/shards.js';
import { resolveBase } from '../../../shared/ml/base-models.js';
import { isMultiCut, loadEmbedder, type MultiCutEmbedder } from '../../../shared/ml/embedder.js';

describe('a model the search made', () => {
  let cleanup: () => Promise<void>;
  let store: FsObjectStore;
  beforeEach(async () => {
    ({ store, cleanup } = await tempStore('tl-search-continual-'));
  });
  afterEach(async () => cleanup());

  it('can be extended with new classes (continual learning) and used as a base', async () => {
    const first = await runTrainingJob(
      await writePreparedDataset(store, { hash: 's1', perSplit: { train: 12, validation: 6, test: 6 }, spec: { base: 'mobilenet_v2' } }),
      { store },
    );
    expect(first.ok).toBe(true);
    const v1 = (first as { version: string }).version;
    const meta1 = (await readMetadata(store, 'colours', v1))!;
    expect(meta1.metrics.search).toBeDefined();

    // Continual: a fourth class on the model the search chose (its base and cut, whichever won).
    const extended = await runTrainingJob(
      await writePreparedDataset(store, {
        hash: 's2',
        classes: ['blue', 'green', 'red', 'violet'],
        perSplit: { train: 12, validation: 4, test: 4 },
        spec: { base: 'mobilenet_v2', from: `colours@${v1}`, training: { epochs: 3 } },
      }),
      { store },
    );
    expect(extended, JSON.stringify(extended)).toMatchObject({ ok: true });
    const meta2 = (await readMetadata(store, 'colours', (extended as { version: string }).version))!;
    expect(meta2.base).toEqual(meta1.base);
    expect(meta2.tasks[0].labels).toEqual(['blue', 'green', 'red', 'violet']);

    // As a base: model:colours@v1 (its embedder and, for a linear model, no trunk).
    const onTop = await runTrainingJob(
      await writePreparedDataset(store, {
        dataset: 'again',
        hash: 's3',
        perSplit: { train: 9, validation: 3, test: 3 },
        spec: { base: `model:colours@${v1}`, training: { epochs: 3 } },
      }),
      { store },
    );
    expect(onTop, JSON.stringify(onTop)).toMatchObject({ ok: true });
  });

  it('searches a model: base over its layers, from its input to its trunk, and serves the one chosen', async () => {
    // Prepare: a source model with a hidden trunk, on the raw pixels.
    const source = await runTrainingJob(
      await writePreparedDataset(store, {
        hash: 't1',
        spec: { base: 'none', sharing: { method: 'hard', trunk: [16] }, training: { epochs: 8, batchSize: 8, learningRate: 0.003 } },
      }),
      { store },
    );
    const v1 = (source as { version: string }).version;
    const prepared = await writePreparedDataset(store, {
      dataset: 'again',
      hash: 't2',
      perSplit: { train: 12, validation: 6, test: 6 },
      spec: { base: `model:colours@${v1}`, training: { epochs: 3, searchBudgetSeconds: 120 } },
    });

    // Act
    const result = await runTrainingJob(prepared, { store });

    // Assess: the trunk's output (the base's own features) first, then the source's input, then the pixels.
    expect(result, JSON.stringify(result)).toMatchObject({ ok: true });
    const version = (result as { version: string }).version;
    const meta = (await readMetadata(store, 'again', version))!;
    const search = meta.metrics.search as SearchReport;
    expect(search.leaderboard.filter((e) => e.family === 'linear').map((e) => [e.candidate, e.size])).toEqual([
      ['trunk_0', 16],
      ['embedding', 3072],
      ['pixels 32×32×3', 3072],
    ]);
    const chosen = search.chosen;
    if (chosen === 'trunk_0') expect(meta.base).toMatchObject({ name: `model:colours@${v1}`, embeddingSize: 16 });
    else if (chosen === 'embedding')
      expect(meta.base).toMatchObject({ name: `model:colours@${v1}`, embeddingSize: 3072, cut: { layer: 'embedding', pooling: 'none' } });
    else expect(meta.base).toMatchObject({ name: 'none', embeddingSize: 3072 });
    // One pass of the source's base serves both layers: the same features as an embedder per layer.
    const base = await resolveBase(store, `model:colours@${v1}`);
    const cuts = [
      { layer: 'trunk_0', pooling: 'none' as const },
      { layer: 'embedding', pooling: 'none' as const },
    ];
    const multi = await loadEmbedder(store, base, { embedding: cuts[0], cuts });
    const test = await readSplit(store, prepared.report, 'test');
    try {
      expect(isMultiCut(multi) && multi.sizes).toEqual([16, 3072]);
      const both = await (multi as MultiCutEmbedder).embedCuts(test.data as Uint8Array, test.records.length, { sourceShape: SHAPE });
      for (const [i, cut] of cuts.entries()) {
        const one = await loadEmbedder(store, base, { embedding: cut });
        try {
          expect(both[i]).toEqual(await one.embed(test.data as Uint8Array, test.records.length, { sourceShape: SHAPE }));
        } finally {
          one.dispose();
        }
      }
    } finally {
      multi.dispose();
    }
    // Served as predict serves it, the test split scores what the report says.
    const report = VersionReportSchema.parse(await getJson(store, `models/again/${version}/report.json`));
    const served = await servedTestAccuracy(store, 'again', version, prepared.report, ['class']);
    for (const [task, accuracy] of Object.entries(served)) expect(accuracy).toBeCloseTo((report.tasks[task].test as { accuracy: number }).accuracy, 6);
  });
});
