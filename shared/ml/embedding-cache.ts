/**
 * Embeddings of the frozen part, stored and reused: the forward pass of the base
 * is most of a transfer job's compute, and its result depends only on the base
 * (with its cut) and the pixels. A second job on the same images with other
 * head settings, labels or spec then skips it.
 *
 * Layout: `cache/embeddings/<base key>/<content hash>.bin`, one object per array
 * of images (one per split in a training job), keyed by the SHA-256 of the
 * image shape and pixels, so a changed spec (another hash of the dataset) or a
 * split that moved records is still found when the pixels are the same.
 * Object: uint32 count, uint32 size (little-endian), then count×size float32.
 */
import { createHash } from 'node:crypto';
import { NotFoundError, type ObjectStore } from '../ports/object-store.js';
import type { ModelMetadata } from '../schemas/model.js';
import { versionPrefix } from '../models/registry.js';
import { resolveBase, type ResolvedBase } from './base-models.js';
import { loadEmbedder, type Embedder, type ImageShape } from './embedder.js';

export const EMBEDDING_CACHE_PREFIX = 'cache/embeddings';
export type CacheOutcome = 'hit' | 'miss';

export interface EmbeddingCut {
  layer: string;
  pooling: 'none' | 'avg';
}

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
 */
export function embeddingBaseKey(baseName: string, cut?: EmbeddingCut, identity?: string): string {
  const name = escapeSegment(baseName);
  const at = cut ? `${name}~${escapeSegment(cut.layer)}${cut.pooling === 'avg' ? '~avg' : ''}` : name;
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
  const files = async (prefix: string) => (await store.list(`${prefix}/`)).filter((o) => o.key.endsWith('.json') || o.key.endsWith('.bin')).map((o) => `${o.key}|${o.size}|${o.etag ?? o.lastModified?.toISOString() ?? ''}`);
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
export async function embedForBase(store: ObjectStore, meta: Pick<ModelMetadata, 'base'>, images: { pixels: Uint8Array; count: number; shape: ImageShape }): Promise<{ x: Float32Array; size: number; cache: CacheOutcome }> {
  const base = await resolveBase(store, meta.base.name);
  const cut = meta.base.cut;
  const lazy = lazyEmbedder(() => loadEmbedder(store, base, cut ? { embedding: cut } : {}));
  try {
    return await embedCached({ store, baseKey: await embeddingKeyFor(store, base, cut), pixels: images.pixels, count: images.count, shape: images.shape, embedder: lazy.get });
  } finally {
    lazy.dispose();
  }
}

/** Content hash of an array of images and their shape. */
export function pixelsHash(pixels: Uint8Array, shape: readonly number[]): string {
  return createHash('sha256').update(JSON.stringify(shape)).update(pixels).digest('hex');
}

export const embeddingCacheKey = (baseKey: string, hash: string) => `${EMBEDDING_CACHE_PREFIX}/${baseKey}/${hash}.bin`;

export function encodeEmbeddings(x: Float32Array, count: number, size: number): Buffer {
  const out = Buffer.alloc(8 + x.byteLength);
  out.writeUInt32LE(count, 0);
  out.writeUInt32LE(size, 4);
  Buffer.from(x.buffer, x.byteOffset, x.byteLength).copy(out, 8);
  return out;
}

/** @returns undefined for a damaged object (it is then recomputed and overwritten). */
export function decodeEmbeddings(buf: Buffer): { count: number; size: number; x: Float32Array } | undefined {
  if (buf.length < 8) return undefined;
  const count = buf.readUInt32LE(0);
  const size = buf.readUInt32LE(4);
  if (buf.length !== 8 + count * size * 4) return undefined;
  const x = new Float32Array(count * size);
  new Uint8Array(x.buffer).set(buf.subarray(8));
  return { count, size, x };
}

export interface EmbedCachedOptions {
  store: ObjectStore;
  baseKey: string;
  /** count×shape uint8 images. */
  pixels: Uint8Array;
  count: number;
  shape: ImageShape;
  /** Loaded only on a miss (loading a base costs seconds); the caller disposes what it returns. */
  embedder: () => Promise<Embedder>;
  onProgress?: (done: number, total: number) => void;
  /** Told when the cache could not be read or written; the embeddings are computed all the same. */
  onCacheError?: (err: unknown) => void;
}

/**
 * Embeddings of `pixels` from the cache, or computed and stored. The cache is an
 * optimisation: a failed read (other than not found) or write never fails the caller.
 */
export async function embedCached(opts: EmbedCachedOptions): Promise<{ x: Float32Array; size: number; cache: CacheOutcome }> {
  const key = embeddingCacheKey(opts.baseKey, pixelsHash(opts.pixels, opts.shape));
  try {
    const hit = decodeEmbeddings(await opts.store.get(key));
    if (hit && hit.count === opts.count) {
      opts.onProgress?.(opts.count, opts.count);
      return { x: hit.x, size: hit.size, cache: 'hit' };
    }
  } catch (err) {
    if (!(err instanceof NotFoundError)) opts.onCacheError?.(err);
  }
  const embedder = await opts.embedder();
  const x = opts.count === 0 ? new Float32Array(0) : await embedder.embed(opts.pixels, opts.count, { sourceShape: opts.shape, onProgress: opts.onProgress });
  try {
    await opts.store.put(key, encodeEmbeddings(x, opts.count, embedder.size), { contentType: 'application/octet-stream' });
  } catch (err) {
    opts.onCacheError?.(err);
  }
  return { x, size: embedder.size, cache: 'miss' };
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
