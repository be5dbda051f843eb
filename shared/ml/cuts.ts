/**
 * What a cut of a base means once it can be a concatenation (CutSchema's `concat`):
 * its parts in order, a stable key, words for people, and how per-part embeddings
 * become the one vector per image the served model reads. Pure functions, so the
 * engines, the cache, predict and the export all agree on the same order.
 */

/** One layer of the base, pooled or not. */
export interface LayerCut {
  layer: string;
  pooling: 'none' | 'avg';
}

/** Where a base is cut: one layer, or that layer's features followed by each `concat` entry's. */
export interface EmbeddingCut extends LayerCut {
  concat?: LayerCut[];
}

/** A cut as callers may hold it, pooling left out meaning none. */
type LooseCut = { layer: string; pooling?: 'none' | 'avg'; concat?: Array<{ layer: string; pooling?: 'none' | 'avg' }> };

/** The layers a cut reads, in the order their features are laid side by side. */
export function cutParts(cut: LooseCut): LayerCut[] {
  return [{ layer: cut.layer, pooling: cut.pooling ?? 'none' }, ...(cut.concat ?? []).map((c) => ({ layer: c.layer, pooling: c.pooling ?? 'none' }))];
}

export const isConcatCut = (cut: EmbeddingCut | undefined): boolean => (cut?.concat?.length ?? 0) > 0;

/** `layer#pooling`, parts joined by `+`: distinct cuts get distinct keys (a cache of embedders is keyed by it). */
export const cutKey = (cut: EmbeddingCut): string =>
  cutParts(cut)
    .map((p) => `${p.layer}#${p.pooling}`)
    .join('+');

/** `flatten_1`, `block_13_expand_relu (avg)`, or `concat of flatten_1, block_16_project (avg)`. */
export function describeCut(cut: EmbeddingCut, avg = ' (avg)'): string {
  const part = (p: LayerCut) => `${p.layer}${p.pooling === 'avg' ? avg : ''}`;
  return isConcatCut(cut) ? `concat of ${cutParts(cut).map(part).join(', ')}` : part(cut);
}

/**
 * Rows of several count×size_i arrays side by side: row r is part 0's row r, then
 * part 1's, and so on (the layout of a concat cut's embeddings).
 */
export function concatRows(parts: Float32Array[], sizes: number[], count: number): Float32Array {
  const total = sizes.reduce((a, b) => a + b, 0);
  const out = new Float32Array(count * total);
  for (let r = 0; r < count; r++) {
    let at = r * total;
    parts.forEach((p, i) => {
      out.set(p.subarray(r * sizes[i], (r + 1) * sizes[i]), at);
      at += sizes[i];
    });
  }
  return out;
}

/**
 * The distinct layer cuts behind several cuts (one forward pass computes each once),
 * and per cut the indices of its parts among them, in the cut's order.
 */
export function partsOf(cuts: readonly EmbeddingCut[]): { parts: LayerCut[]; plan: number[][] } {
  const parts: LayerCut[] = [];
  const index = new Map<string, number>();
  const plan = cuts.map((cut) =>
    cutParts(cut).map((p) => {
      const key = cutKey(p);
      if (!index.has(key)) {
        index.set(key, parts.length);
        parts.push(p);
      }
      return index.get(key)!;
    }),
  );
  return { parts, plan };
}

/** Per cut, its parts' rows side by side, from every part's count×size rows. */
export function assembleCuts(byPart: Float32Array[], partSizes: number[], plan: number[][], count: number): Float32Array[] {
  return plan.map((own) =>
    own.length === 1
      ? byPart[own[0]]
      : concatRows(
          own.map((p) => byPart[p]),
          own.map((p) => partSizes[p]),
          count,
        ),
  );
}
