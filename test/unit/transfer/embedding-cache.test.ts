import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempStore } from '../../helpers/temp-store.js';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { runTrainingJob } from '../../../functions/train/core.js';
import type { EmbedderProvider } from '../../../functions/train/context.js';
import { readJobStatus } from '../../../shared/jobs/status.js';
import { loadEmbedder, type Embedder } from '../../../shared/ml/embedder.js';
import { EMBEDDING_CACHE_PREFIX, MAX_BLOCKS, embedCached } from '../../../shared/ml/embedding-cache.js';
import { versionPrefix } from '../../../shared/models/registry.js';
import { getJson } from '../../../shared/ports/object-store.js';
import { COLOURS, image, SHAPE, writeDataset, writeTinyBase } from './fixtures.js';

const PER = SHAPE[0] * SHAPE[1] * SHAPE[2];

/** An embedder that counts the images passed through it (given through deps; no module is mocked). */
function counting(inner: () => Promise<Embedder>): { load: () => Promise<Embedder>; seen: () => number } {
  let seen = 0;
  return {
    seen: () => seen,
    load: async () => {
      const e = await inner();
      return {
        inputShape: e.inputShape,
        size: e.size,
        embed: (pixels, count, opts) => {
          seen += count;
          return e.embed(pixels, count, opts);
        },
        dispose: () => e.dispose(),
      };
    },
  };
}

const images = (seeds: number[]) => {
  const out = new Uint8Array(seeds.length * PER);
  seeds.forEach((s, i) => out.set(image(s % 3, s), i * PER));
  return out;
};
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('per-image embedding cache', () => {
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ store, cleanup } = await tempStore('tl-embcache-'));
    await writeTinyBase(store);
  });
  afterAll(async () => cleanup());

  const pixelEmbedder = () => loadEmbedder(store, { kind: 'none', name: 'none', inputShape: SHAPE });
  /** The images of `seeds` through the cache, as two arrays split at `at`. */
  const inTwoArrays = (baseKey: string, seeds: number[], at: number, embedder: () => Promise<Embedder>) =>
    embedCached({ store, baseKey, pixels: [images(seeds.slice(0, at)), images(seeds.slice(at))], count: seeds.length, shape: SHAPE, embedder });
  const objectsUnder = async (baseKey: string) => (await store.list(`${EMBEDDING_CACHE_PREFIX}/${baseKey}/`)).map((o) => o.key);

  it('embeds only the images it has not seen, whatever their order or array, and stores them in blocks', async () => {
    // Prepare: 1,000 images embedded once
    const first = counting(pixelEmbedder);
    const cold = await embedCached({ store, baseKey: 'unit', pixels: images(range(0, 1000)), count: 1000, shape: SHAPE, embedder: first.load });
    expect([cold.cache, cold.embedded, first.seen()]).toEqual(['miss', 1000, 1000]);

    // Act: the same 1,000 shuffled across two arrays, plus 10 new ones and a repeat of one of them
    const seeds = [...range(1000, 10), ...range(0, 1000).reverse(), 1003];
    const again = counting(pixelEmbedder);
    const warm = await inTwoArrays('unit', seeds, 500, again.load);

    // Assess: 10 went through the embedder, the values are what it computes, the store holds two blocks
    expect(again.seen()).toBe(10);
    expect(warm).toMatchObject({ cache: 'partial', cached: 1000, embedded: 10 });
    const direct = await (await pixelEmbedder()).embed(images(seeds), seeds.length);
    expect(warm.x).toEqual(direct);
    const keys = await objectsUnder('unit');
    expect(keys.filter((k) => k.includes('/blocks/'))).toHaveLength(2);
    expect(keys.filter((k) => k.includes('/index/'))).toHaveLength(2);
  });

  it('gives each image its own embedding whether its chunk is read in place or copied (repeats break the run)', async () => {
    // Arrange: 600 new images over two arrays; in the second, every image repeats the one before it
    const seeds = [...range(5000, 300), ...range(5300, 150).flatMap((s) => [s, s])];
    const counted = counting(pixelEmbedder);

    // Act
    const r = await inTwoArrays('chunks', seeds, 300, counted.load);

    // Assess: 450 distinct images embedded once each, every row what the embedder gives for its image
    expect([r.cache, r.embedded, counted.seen()]).toEqual(['miss', 450, 450]);
    expect(r.x).toEqual(await (await pixelEmbedder()).embed(images(seeds), seeds.length));
  });

  it('merges small blocks beyond MAX_BLOCKS and still finds every image', async () => {
    // Prepare: two jobs at once adding an image both lack: it lands in two blocks
    await Promise.all([
      embedCached({ store, baseKey: 'many', pixels: images([6000, 6001]), count: 2, shape: SHAPE, embedder: pixelEmbedder }),
      embedCached({ store, baseKey: 'many', pixels: images([6001, 6002]), count: 2, shape: SHAPE, embedder: pixelEmbedder }),
    ]);
    // Act: one new image per call, more calls than blocks allowed
    for (let i = 0; i < MAX_BLOCKS + 4; i++)
      await embedCached({ store, baseKey: 'many', pixels: images([5000 + i]), count: 1, shape: SHAPE, embedder: pixelEmbedder });

    // Assess
    const blocks = (await objectsUnder('many')).filter((k) => k.includes('/blocks/'));
    expect(blocks.length).toBeLessThanOrEqual(MAX_BLOCKS);
    const all = counting(pixelEmbedder);
    const r = await embedCached({
      store,
      baseKey: 'many',
      pixels: images([...range(5000, MAX_BLOCKS + 4), 6000, 6001, 6002]),
      count: MAX_BLOCKS + 7,
      shape: SHAPE,
      embedder: all.load,
    });
    expect([r.cache, all.seen()]).toEqual(['hit', 0]);
  });

  it('re-training after adding 10 images to 1,000 embeds only the 10 new ones', async () => {
    // Prepare: a job on 1,000 images through a counting embedder
    const seen: number[] = [];
    const run = async (hash: string, test: number) => {
      const { preparedPrefix, jobId } = await writeDataset(store, {
        dataset: 'grown',
        hash,
        classes: COLOURS,
        // Added images go at the end of the test split: every earlier image keeps its pixels.
        perSplit: { train: 800, validation: 100, test },
        spec: { base: 'tiny', training: { epochs: 2, batchSize: 64, learningRate: 0.01, patience: 2 }, promotion: { margin: 1 } },
      });
      // The job's own embedder (the tiny base), counted on its way through.
      const provider: EmbedderProvider = async (base, opts) => {
        const e = await loadEmbedder(store, base, opts);
        return { inputShape: e.inputShape, size: e.size, embed: (p, n, o) => (seen.push(n), e.embed(p, n, o)), dispose: () => e.dispose() };
      };
      const result = await runTrainingJob({ jobId, preparedPrefix }, { store, statusIntervalMs: 0, embedder: provider });
      const status = await readJobStatus(store, jobId);
      expect(result.ok, JSON.stringify(status?.error)).toBe(true);
      const report = await getJson<{ transfer: { embeddingCache: string; embeddingCacheImages: { cached: number; embedded: number } } }>(
        store,
        `${versionPrefix(status!.model, (result as { version: string }).version)}/report.json`,
      );
      const total = seen.reduce((a, b) => a + b, 0);
      seen.length = 0;
      return { total, status: status!, report };
    };

    // Act
    const cold = await run('g1', 100);
    const grown = await run('g2', 110);

    // Assess
    expect(cold.total).toBe(1000);
    expect(grown.total).toBe(10);
    expect(grown.status.embeddingCache).toBe('partial');
    expect(grown.report.transfer.embeddingCacheImages).toEqual({ cached: 1000, embedded: 10 });
  });
});
