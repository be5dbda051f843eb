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
import type { Embedder, ImageShape } from './embedder.js';

export const EMBEDDING_CACHE_PREFIX = 'cache/embeddings';
export type CacheOutcome = 'hit' | 'miss';

export interface EmbeddingCut {
  layer: string;
  pooling: 'none' | 'avg';
}

/** Folder name for a base and where it is cut (`mobilenet_v2`, `mobilenet_v2~block_16_project_BN`, `model_pets_v2025…~trunk_0`). */
export function embeddingBaseKey(baseName: string, cut?: EmbeddingCut): string {
  const raw = cut ? `${baseName}~${cut.layer}${cut.pooling === 'avg' ? '~avg' : ''}` : baseName;
  return raw.replace(/[^A-Za-z0-9_~.-]/g, '_');
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
