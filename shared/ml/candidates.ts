/**
 * The representation search's candidates: several cuts of one pretrained base, each
 * through the embedding cache (so a later job on the same images skips the base), and
 * all of them from one forward pass (both engines return several outputs of one pass).
 *
 * How one pass serves several cache lookups: each cut's lookup embeds the images it
 * misses through a view of one multi-cut embedder; the first view to ask for a batch
 * runs the pass for every cut and keeps the outputs under the batch's content hash,
 * and the other cuts' views read them from there. An embedder without `embedCuts` (none
 * of the built-in ones today) falls back to one embedder per cut.
 */
import { createHash } from 'node:crypto';
import type { Embedder, EmbedOptions, LoadEmbedderOptions } from './embedder.js';
import { isMultiCut, type MultiCutEmbedder } from './embedder.js';
import type { ResolvedBase } from './base-models.js';
import { embedJobSplits, type EmbeddedSplits, type JobBase } from './transfer-job.js';
import type { Cut } from '../schemas/base-model.js';
import { concatRows, describeCut } from './cuts.js';

type EmbedJobInput = Parameters<typeof embedJobSplits>[0];

/** `flatten_1`, `block_13_expand_relu (avg)`, `concat of flatten_1, block_16_project (avg)`. */
export const cutLabel = (cut: Cut) => describeCut(cut);

/**
 * Every cut's splits, in `cuts` order, as embedJobSplits gives them for one cut.
 * `cuts[0]` is embedded first: the job's own cut (`jobBase.cut`, else the base's embedding layer).
 */
export async function embedCandidateCuts(
  input: Omit<EmbedJobInput, 'jobBase' | 'embedder'> & {
    jobBase: JobBase;
    cuts: Cut[];
    embedder: (base: ResolvedBase, opts: LoadEmbedderOptions) => Promise<Embedder>;
  },
): Promise<EmbeddedSplits[]> {
  const { cuts, jobBase } = input;
  let multi: Promise<Embedder> | undefined;
  const memo = new Map<string, Promise<Float32Array[]>>();
  const own: Embedder[] = [];
  const view = (m: MultiCutEmbedder, i: number): Embedder => ({
    engine: m.engine,
    inputShape: m.inputShape,
    size: m.sizes[i],
    async embed(pixels: Uint8Array, count: number, opts: EmbedOptions = {}) {
      const key = `${createHash('sha1').update(pixels).digest('hex')}:${count}:${opts.sourceShape?.join('x') ?? ''}`;
      let pass = memo.get(key);
      if (!pass) {
        pass = m.embedCuts(pixels, count, opts);
        memo.set(key, pass);
      }
      return (await pass)[i];
    },
    dispose() {},
  });
  try {
    const out: EmbeddedSplits[] = [];
    for (const [i, cut] of cuts.entries()) {
      out.push(
        await embedJobSplits({
          ...input,
          // The other cuts come out of the first one's pass: progress is the first's.
          onProgress: i === 0 ? input.onProgress : undefined,
          // The first cut is the job's own (its cache key stays the one a job without search uses).
          jobBase: i === 0 ? jobBase : { ...jobBase, cut },
          embedder: async (base) => {
            multi ??= input.embedder(base, { embedding: cuts[0], cuts });
            const m = await multi;
            if (isMultiCut(m) && m.sizes.length === cuts.length) return view(m, i);
            if (i === 0) return view1(m);
            const single = await input.embedder(base, { embedding: cut });
            own.push(single);
            return view1(single);
          },
        }),
      );
    }
    return out;
  } finally {
    if (multi) (await multi.catch(() => undefined))?.dispose();
    for (const e of own) e.dispose();
    memo.clear();
  }
}

/** The embedder itself, with a dispose that leaves it to embedCandidateCuts. */
const view1 = (e: Embedder): Embedder => ({
  engine: e.engine,
  inputShape: e.inputShape,
  size: e.size,
  embed: (pixels, count, opts) => e.embed(pixels, count, opts),
  dispose() {},
});

/**
 * Several cuts' splits as one representation: each record's features side by side, in
 * `parts` order (what an embedder of the cut `{ ...first, concat: rest }` returns). The
 * parts come from one pass over the same records, so their indices and targets agree;
 * the first part's are kept, and its cache outcome stands for the pass.
 */
export function concatEmbedded(parts: EmbeddedSplits[]): EmbeddedSplits {
  const size = parts.reduce((a, p) => a + p.size, 0);
  const [first] = parts;
  const prepared = Object.fromEntries(
    Object.entries(first.prepared).map(([split, s]) => {
      const xs = parts.map((p) => p.prepared[split as keyof typeof first.prepared].x);
      return [
        split,
        {
          ...s,
          x: concatRows(
            xs,
            parts.map((p) => p.size),
            s.count,
          ),
        },
      ];
    }),
  ) as EmbeddedSplits['prepared'];
  return { prepared, index: first.index, size, cache: first.cache, images: first.images };
}
