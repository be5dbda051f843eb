/**
 * Embeddings of the frozen part, stored and reused per image: the forward pass of
 * the base is most of a transfer job's compute, and its result depends only on the
 * base (its content and cut) and the image's pixels. A job that adds 10 images to
 * a dataset of 1,000 embeds those 10; a dataset that shares images with another
 * reuses theirs; another spec on the same images embeds nothing.
 *
 * Key of an image: SHA-256 of its shape and its decoded, resized pixels (what the
 * preprocess step stored in the shards), under a folder per base content and cut
 * (embeddingBaseKey). Layout under `cache/embeddings/<base key>/`, in large blocks,
 * never one object per image (on S3 that would be a request per image):
 *
 * - `blocks/<id>.bin`: the embeddings one job (or a compaction) added, row after
 *   row: `TLEB`, uint32 version, uint32 count, uint32 size (little-endian), then
 *   count×size float32;
 * - `index/<id>.bin`: the image keys of that block's rows, in order: `TLEI`,
 *   uint32 version, uint32 count, then count×32 bytes of SHA-256.
 *
 * Both are written once and never changed (append-only: a job writes a new pair,
 * block first, so an index never names a block not yet written). A reader lists
 * `index/` (one LIST, a few small GETs), then fetches only the blocks that hold
 * rows it needs. When a folder has more than MAX_BLOCKS blocks, the small ones are
 * merged into one and then deleted; a reader that still named them finds them
 * gone and embeds those images again, which is why a cache fault is a miss and
 * never an error.
 */
import { createHash } from 'node:crypto';
import { NotFoundError, type ObjectStore } from '../ports/object-store.js';
import type { ModelMetadata } from '../schemas/model.js';
import { versionPrefix } from '../models/registry.js';
import { resolveBase, type ResolvedBase } from './base-models.js';
import { loadEmbedder, type Embedder, type ImageShape } from './embedder.js';
import { cutParts, type EmbeddingCut } from './cuts.js';

export const EMBEDDING_CACHE_PREFIX = 'cache/embeddings';
export type CacheOutcome = 'hit' | 'miss' | 'partial';

export type { EmbeddingCut } from './cuts.js';

/**
 * Escapes a base name into one key segment without merging distinct names:
 * every character outside [A-Za-z0-9_.-] (and `%` itself) becomes `%XX`, so
 * `model:shapes@v1` and `model_shapes_v1` stay apart.
 */
function escapeSegment(raw: string): string {
  return raw.replace(/[^A-Za-z0-9_.-]/g, (ch) => [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
}

/**
 * Folder name for a base and where it is cut (`mobilenet_v2`,
 * `mobilenet_v2~block_16_project_BN`, `model%3Apets%40v2025…~trunk_0`), plus,
 * when given, a hash of the base's content (see baseIdentity): a base replaced
 * under the same name then gets a new folder instead of serving stale embeddings.
 * A concat cut joins its parts with `+` (`mobilenet_v2~flatten_1+block_16_project~avg`):
 * escaping keeps `+` and `~` out of layer names, so no single cut can take that folder.
 */
export function embeddingBaseKey(baseName: string, cut?: EmbeddingCut, identity?: string): string {
  const name = escapeSegment(baseName);
  const part = (p: { layer: string; pooling: string }) => `${escapeSegment(p.layer)}${p.pooling === 'avg' ? '~avg' : ''}`;
  const at = cut ? `${name}~${cutParts(cut).map(part).join('+')}` : name;
  return identity ? `${at}~${identity}` : at;
}

/**
 * A short hash of what a base computes: for a pretrained base its descriptor and
 * the list info (key, size, ETag) of its model.json and weight files; for a
 * `model:` base the same for the source version's files plus its own base's
 * identity; for `none` its input shape. Reading list info costs one LIST, not
 * the weights.
 */
export async function baseIdentity(store: ObjectStore, base: ResolvedBase, seen = new Set<string>()): Promise<string> {
  const h = createHash('sha256').update(base.kind).update('\0').update(base.name);
  const files = async (prefix: string) =>
    (await store.list(`${prefix}/`))
      .filter((o) => o.key.endsWith('.json') || o.key.endsWith('.bin'))
      .map((o) => `${o.key}|${o.size}|${o.etag ?? o.lastModified?.toISOString() ?? ''}`);
  if (base.kind === 'none') h.update(JSON.stringify(base.inputShape));
  else if (base.kind === 'pretrained') {
    h.update(JSON.stringify(base.descriptor));
    const prefix = base.descriptor.modelKey.replace(/\/model\.json$/, '');
    h.update(JSON.stringify(await files(prefix)));
  } else {
    const source = base.source;
    h.update(JSON.stringify(await files(versionPrefix(source.model, source.version)))).update(base.layer);
    if (!seen.has(base.name)) {
      seen.add(base.name);
      h.update(await baseIdentity(store, await resolveBase(store, source.base.name), seen)).update(JSON.stringify(source.base.cut ?? null));
    }
  }
  return h.digest('hex').slice(0, 16);
}

/** The cache folder of a version's embedder: its base (content included) and cut. */
export async function embeddingKeyFor(store: ObjectStore, base: ResolvedBase, cut?: EmbeddingCut): Promise<string> {
  return embeddingBaseKey(base.name, cut, await baseIdentity(store, base));
}

/**
 * Embeddings of images for a version's embedder (its base, cut where its
 * metadata says), through the cache keyed by the base's content.
 */
export async function embedForBase(
  store: ObjectStore,
  meta: Pick<ModelMetadata, 'base'>,
  images: { pixels: Uint8Array; count: number; shape: ImageShape },
): Promise<EmbedCachedResult> {
  const base = await resolveBase(store, meta.base.name);
  const cut = meta.base.cut;
  const lazy = lazyEmbedder(() => loadEmbedder(store, base, cut ? { embedding: cut } : {}));
  try {
    return await embedCached({
      store,
      baseKey: await embeddingKeyFor(store, base, cut),
      pixels: images.pixels,
      count: images.count,
      shape: images.shape,
      embedder: lazy.get,
    });
  } finally {
    lazy.dispose();
  }
}

/** Key of one image: SHA-256 of its shape and pixels. */
export function imageKey(pixels: Uint8Array, shape: readonly number[]): Buffer {
  return createHash('sha256').update(JSON.stringify(shape)).update(pixels).digest();
}

const BLOCK_MAGIC = 'TLEB';
const INDEX_MAGIC = 'TLEI';
const FORMAT_VERSION = 1;
const KEY_BYTES = 32;
/** Blocks a folder may hold before its small ones are merged (each costs a GET of its index per job). */
export const MAX_BLOCKS = 16;
/** Blocks below this size are merged; merging reads them all, so the merged block stays under it too. */
const SMALL_BLOCK_BYTES = 64 * 1024 * 1024;

export const embeddingBlockKey = (baseKey: string, id: string) => `${EMBEDDING_CACHE_PREFIX}/${baseKey}/blocks/${id}.bin`;
export const embeddingIndexKey = (baseKey: string, id: string) => `${EMBEDDING_CACHE_PREFIX}/${baseKey}/index/${id}.bin`;

export function encodeEmbeddings(x: Float32Array, count: number, size: number): Buffer {
  const out = Buffer.alloc(16 + x.byteLength);
  out.write(BLOCK_MAGIC, 0, 'latin1');
  out.writeUInt32LE(FORMAT_VERSION, 4);
  out.writeUInt32LE(count, 8);
  out.writeUInt32LE(size, 12);
  Buffer.from(x.buffer, x.byteOffset, x.byteLength).copy(out, 16);
  return out;
}

/** @returns undefined for a damaged block (its images are then embedded again). */
export function decodeEmbeddings(buf: Buffer): { count: number; size: number; x: Float32Array } | undefined {
  if (buf.length < 16 || buf.toString('latin1', 0, 4) !== BLOCK_MAGIC || buf.readUInt32LE(4) !== FORMAT_VERSION) return undefined;
  const count = buf.readUInt32LE(8);
  const size = buf.readUInt32LE(12);
  if (buf.length !== 16 + count * size * 4) return undefined;
  const x = new Float32Array(count * size);
  new Uint8Array(x.buffer).set(buf.subarray(16));
  return { count, size, x };
}

export function encodeIndex(keys: Buffer[]): Buffer {
  const out = Buffer.alloc(12 + keys.length * KEY_BYTES);
  out.write(INDEX_MAGIC, 0, 'latin1');
  out.writeUInt32LE(FORMAT_VERSION, 4);
  out.writeUInt32LE(keys.length, 8);
  keys.forEach((k, i) => k.copy(out, 12 + i * KEY_BYTES));
  return out;
}

/** @returns the image keys (hex) of a block's rows, or undefined for a damaged index. */
export function decodeIndex(buf: Buffer): string[] | undefined {
  if (buf.length < 12 || buf.toString('latin1', 0, 4) !== INDEX_MAGIC || buf.readUInt32LE(4) !== FORMAT_VERSION) return undefined;
  const count = buf.readUInt32LE(8);
  if (buf.length !== 12 + count * KEY_BYTES) return undefined;
  return Array.from({ length: count }, (_, i) => buf.toString('hex', 12 + i * KEY_BYTES, 12 + (i + 1) * KEY_BYTES));
}

/** Where each cached image of a folder is: block id and row. */
interface CacheIndex {
  rows: Map<string, { block: string; row: number }>;
  /** The image keys of each block's rows (an image may be in two blocks when two jobs added it at once). */
  blocks: Map<string, string[]>;
}

async function readIndex(store: ObjectStore, baseKey: string): Promise<CacheIndex> {
  const prefix = `${EMBEDDING_CACHE_PREFIX}/${baseKey}/index/`;
  const listed = (await store.list(prefix)).filter((o) => o.key.endsWith('.bin'));
  const rows = new Map<string, { block: string; row: number }>();
  const blocks = new Map<string, string[]>();
  const indexes = await Promise.all(
    listed.map(async (o) => {
      try {
        return { block: o.key.slice(prefix.length, -'.bin'.length), keys: decodeIndex(await store.get(o.key)) };
      } catch (err) {
        // Deleted by a compaction since the LIST: its rows are in the merged block.
        if (err instanceof NotFoundError) return { block: '', keys: undefined };
        throw err;
      }
    }),
  );
  for (const { block, keys } of indexes) {
    if (!keys) continue;
    blocks.set(block, keys);
    keys.forEach((k, row) => rows.set(k, { block, row }));
  }
  return { rows, blocks };
}

/** A new block and its index: block first, so an index never names a block that is not there. */
async function writeBlock(store: ObjectStore, baseKey: string, keys: Buffer[], x: Float32Array, size: number): Promise<string> {
  const id = createHash('sha256').update(Buffer.concat(keys)).update(String(size)).digest('hex').slice(0, 32);
  await store.put(embeddingBlockKey(baseKey, id), encodeEmbeddings(x, keys.length, size), { contentType: 'application/octet-stream' });
  await store.put(embeddingIndexKey(baseKey, id), encodeIndex(keys), { contentType: 'application/octet-stream' });
  return id;
}

/**
 * Merges the small blocks of a folder into one when it holds more than MAX_BLOCKS:
 * the merged pair is written before the old ones are deleted (index first), so
 * every row stays readable from one block or the other throughout.
 * @returns how many blocks were merged (0 when none was needed).
 */
export async function compactEmbeddingCache(store: ObjectStore, baseKey: string): Promise<number> {
  const index = await readIndex(store, baseKey);
  if (index.blocks.size <= MAX_BLOCKS) return 0;
  const merged: { keys: Buffer[]; parts: Float32Array[]; size: number; bytes: number; ids: string[] } = { keys: [], parts: [], size: 0, bytes: 0, ids: [] };
  // Smallest first: merging them cuts the most blocks for the fewest bytes read.
  for (const [id, keys] of [...index.blocks].sort((a, b) => a[1].length - b[1].length)) {
    let block;
    try {
      block = decodeEmbeddings(await store.get(embeddingBlockKey(baseKey, id)));
    } catch (err) {
      if (err instanceof NotFoundError) continue;
      throw err;
    }
    if (!block || block.count !== keys.length || (merged.size && block.size !== merged.size)) continue;
    if (merged.bytes + block.x.byteLength > SMALL_BLOCK_BYTES) break;
    merged.size = block.size;
    merged.bytes += block.x.byteLength;
    merged.parts.push(block.x);
    merged.ids.push(id);
    for (const k of keys) merged.keys.push(Buffer.from(k, 'hex'));
  }
  if (merged.ids.length < 2) return 0;
  const x = new Float32Array(merged.bytes / 4);
  let at = 0;
  for (const p of merged.parts) {
    x.set(p, at);
    at += p.length;
  }
  const id = await writeBlock(store, baseKey, merged.keys, x, merged.size);
  for (const old of merged.ids.filter((o) => o !== id)) {
    await store.delete(embeddingIndexKey(baseKey, old));
    await store.delete(embeddingBlockKey(baseKey, old));
  }
  return merged.ids.length;
}

export interface EmbedCachedOptions {
  store: ObjectStore;
  baseKey: string;
  /** count×shape uint8 images: one array, or several (the splits of a job) read as one list. */
  pixels: Uint8Array | Uint8Array[];
  count: number;
  shape: ImageShape;
  /** Loaded only on a miss (loading a base costs seconds); the caller disposes what it returns. */
  embedder: () => Promise<Embedder>;
  /** Images done (found or embedded) out of all. */
  onProgress?: (done: number, total: number) => void;
  /** Told when the cache could not be read or written; the embeddings are computed all the same. */
  onCacheError?: (err: unknown) => void;
}

export interface EmbedCachedResult {
  x: Float32Array;
  size: number;
  /** `hit`: every image was cached; `miss`: none was; `partial`: some were. */
  cache: CacheOutcome;
  /** Images found in the cache, and images that went through the embedder (repeats within the call counted once). */
  cached: number;
  embedded: number;
}

/**
 * The images as one view of the memory they already share, when each follows the one
 * before it there (a job's split read whole, nothing cached): no copy is needed then.
 */
function adjacent(images: Uint8Array[]): Uint8Array | undefined {
  const [first] = images;
  for (let j = 1; j < images.length; j++) {
    if (images[j].buffer !== first.buffer || images[j].byteOffset !== first.byteOffset + j * first.length) return undefined;
  }
  return new Uint8Array(first.buffer, first.byteOffset, first.length * images.length);
}

/** Images per call to the embedder: bounds the copy of the missing images' pixels. */
const EMBED_CHUNK = 256;

/**
 * Embeddings of `pixels` from the cache, the missing images computed and stored
 * as one new block. The cache is an optimisation: a failed read or write never
 * fails the caller, it only costs forward passes.
 */
export async function embedCached(opts: EmbedCachedOptions): Promise<EmbedCachedResult> {
  const per = opts.shape[0] * opts.shape[1] * opts.shape[2];
  const arrays = Array.isArray(opts.pixels) ? opts.pixels : [opts.pixels];
  const images: Uint8Array[] = [];
  for (const a of arrays) for (let i = 0; i * per < a.length; i++) images.push(a.subarray(i * per, (i + 1) * per));
  if (images.length !== opts.count) throw new Error(`embedCached: ${images.length} images given, count says ${opts.count}`);
  const keys = images.map((img) => imageKey(img, opts.shape));
  const hex = keys.map((k) => k.toString('hex'));

  const found = await readCached(opts, hex);
  let size = found.size;
  // Images to embed, each distinct one once.
  const todo = new Map<string, number[]>();
  hex.forEach((k, i) => {
    if (!found.rows.has(i)) todo.set(k, [...(todo.get(k) ?? []), i]);
  });
  const cachedCount = opts.count - [...todo.values()].reduce((a, v) => a + v.length, 0);
  let done = cachedCount;
  if (cachedCount) opts.onProgress?.(done, opts.count);
  let fresh: { keys: Buffer[]; x: Float32Array } | undefined;
  if (todo.size) {
    const embedder = await opts.embedder();
    size = embedder.size;
    const order = [...todo.values()];
    const x = new Float32Array(order.length * size);
    // One buffer for the chunks that must be copied (fresh memory per chunk cost more than the copy).
    let buffer: Uint8Array | undefined;
    for (let start = 0; start < order.length;) {
      // A chunk stays within one source array, where its images usually lie side by side.
      const from = images[order[start][0]].buffer;
      let end = start + 1;
      while (end < order.length && end - start < EMBED_CHUNK && images[order[end][0]].buffer === from) end++;
      const chunk = order.slice(start, end);
      let pixels = adjacent(chunk.map((idx) => images[idx[0]]));
      if (!pixels) {
        buffer ??= new Uint8Array(Math.min(EMBED_CHUNK, order.length) * per);
        pixels = buffer.subarray(0, chunk.length * per);
        chunk.forEach((idx, j) => pixels!.set(images[idx[0]], j * per));
      }
      const base = done;
      const y = await embedder.embed(pixels, chunk.length, {
        sourceShape: opts.shape,
        onProgress: opts.onProgress && ((d) => opts.onProgress!(base + chunk.slice(0, d).reduce((a, idx) => a + idx.length, 0), opts.count)),
      });
      x.set(y, start * size);
      done += chunk.reduce((a, idx) => a + idx.length, 0);
      start = end;
    }
    fresh = { keys: order.map((idx) => keys[idx[0]]), x };
  }

  const out = new Float32Array(opts.count * size);
  for (const [i, row] of found.rows) out.set(row, i * size);
  [...todo.values()].forEach((idx, j) => {
    for (const i of idx) out.set(fresh!.x.subarray(j * size, (j + 1) * size), i * size);
  });
  if (fresh) {
    try {
      await writeBlock(opts.store, opts.baseKey, fresh.keys, fresh.x, size);
      await compactEmbeddingCache(opts.store, opts.baseKey);
    } catch (err) {
      opts.onCacheError?.(err);
    }
  }
  const embedded = todo.size;
  return { x: out, size, cache: embedded === 0 ? 'hit' : cachedCount === 0 ? 'miss' : 'partial', cached: cachedCount, embedded };
}

/** The cached rows of the wanted images (by position), reading only the blocks that hold some. */
async function readCached(opts: EmbedCachedOptions, wanted: string[]): Promise<{ rows: Map<number, Float32Array>; size: number }> {
  const rows = new Map<number, Float32Array>();
  let size = 0;
  let index: CacheIndex;
  try {
    index = await readIndex(opts.store, opts.baseKey);
  } catch (err) {
    opts.onCacheError?.(err);
    return { rows, size };
  }
  const byBlock = new Map<string, Array<{ i: number; row: number }>>();
  wanted.forEach((k, i) => {
    const at = index.rows.get(k);
    if (at) byBlock.set(at.block, [...(byBlock.get(at.block) ?? []), { i, row: at.row }]);
  });
  for (const [block, need] of byBlock) {
    let decoded;
    try {
      decoded = decodeEmbeddings(await opts.store.get(embeddingBlockKey(opts.baseKey, block)));
    } catch (err) {
      if (!(err instanceof NotFoundError)) opts.onCacheError?.(err);
      continue;
    }
    // A damaged block, or one of another size than the rest: its images are embedded again.
    if (!decoded || decoded.count !== index.blocks.get(block)?.length || (size && decoded.size !== size)) continue;
    size = decoded.size;
    for (const { i, row } of need) rows.set(i, decoded.x.subarray(row * size, (row + 1) * size));
  }
  return { rows, size };
}

/**
 * An embedder loaded on first use and shared by several embedCached calls;
 * `dispose` frees it only if it was loaded.
 */
export function lazyEmbedder(load: () => Promise<Embedder>): { get: () => Promise<Embedder>; dispose: () => void } {
  let pending: Promise<Embedder> | undefined;
  return {
    get: () => (pending ??= load()),
    dispose: () => void pending?.then((e) => e.dispose()).catch(() => undefined),
  };
}
