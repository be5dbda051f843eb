import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { runTrainingJob } from '../../../functions/train/core.js';
import { readMetadata } from '../../../shared/models/registry.js';
import { tempStore } from '../../helpers/temp-store.js';
import { writePreparedDataset } from './fixtures.js';

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
});
