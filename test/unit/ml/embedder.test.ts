import { describe, expect, it } from 'vitest';
import { EmbedderError, loadEmbedder } from '../../../shared/ml/embedder.js';
import type { ObjectStore } from '../../../shared/ports/object-store.js';

const noStore = {} as ObjectStore; // the pixel embedder reads nothing

describe('pixel embedder (base none)', () => {
  it('scales to [0, 1] and flattens HWC in order, in batches, reporting progress', async () => {
    const e = await loadEmbedder(noStore, { kind: 'none', name: 'none', inputShape: [2, 2, 1] });
    const progress: number[] = [];
    const out = await e.embed(Uint8Array.from([0, 51, 102, 255, 255, 0, 0, 0, 10, 20, 30, 40]), 3, { batchSize: 2, onProgress: (d) => progress.push(d) });
    expect(e.size).toBe(4);
    expect(Array.from(out.subarray(0, 4)).map((v) => +v.toFixed(3))).toEqual([0, 0.2, 0.4, 1]);
    expect(out[8]).toBeCloseTo(10 / 255);
    expect(progress).toEqual([2, 3]);
  });

  it('resizes other image sizes and repeats grey to three channels', async () => {
    const e = await loadEmbedder(noStore, { kind: 'none', name: 'none', inputShape: [4, 4, 3] });
    const out = await e.embed(new Uint8Array(2 * 2 * 1).fill(255), 1, { sourceShape: [2, 2, 1] });
    expect(out).toHaveLength(48);
    out.forEach((v) => expect(v).toBeCloseTo(1, 5));
  });

  it('rejects a pixel buffer of the wrong length', async () => {
    const e = await loadEmbedder(noStore, { kind: 'none', name: 'none', inputShape: [2, 2, 3] });
    await expect(e.embed(new Uint8Array(11), 1)).rejects.toThrow(EmbedderError);
  });
});
