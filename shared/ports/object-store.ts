/**
 * ObjectStore: the bucket of one tenant. Keys use `/` separators and never start
 * with `/`. Every `put` replaces an object whole (readers see the old or the new
 * bytes, never a mix), which is what lets a model version be published before an
 * alias points at it.
 */
import type { z } from 'zod';
export interface ObjectInfo {
  key: string;
  size: number;
  etag?: string;
  lastModified?: Date;
}

export interface PutOptions {
  contentType?: string;
}

export interface PresignedPut {
  url: string;
  /** Headers the client must send with the PUT. */
  headers: Record<string, string>;
}

export interface ObjectStore {
  /** @throws NotFoundError when the key does not exist. */
  get(key: string): Promise<Buffer>;
  put(key: string, body: Buffer | Uint8Array | string, options?: PutOptions): Promise<void>;
  /**
   * Creates the object only if no object has the key yet; returns whether it did.
   * The one primitive for "exactly once" (S3: `If-None-Match: *`; local: exclusive create).
   */
  putIfAbsent(key: string, body: Buffer | Uint8Array | string, options?: PutOptions): Promise<boolean>;
  /** Every object under the prefix, sorted by key (pagination is the adapter's business). */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** A URL that lets a client PUT one object without credentials. */
  presignPut(key: string, options: { expiresIn: number; contentType?: string }): Promise<PresignedPut>;
}

export class NotFoundError extends Error {
  override name = 'NotFoundError';
  constructor(readonly key: string) {
    super(`no object at ${key}`);
  }
}

export async function getJson<T = unknown>(store: ObjectStore, key: string): Promise<T> {
  return JSON.parse((await store.get(key)).toString('utf8')) as T;
}

/** Like getJson, but resolves undefined when the object does not exist. */
export async function getJsonIfExists<T = unknown>(store: ObjectStore, key: string): Promise<T | undefined> {
  try {
    return await getJson<T>(store, key);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

export async function putJson(store: ObjectStore, key: string, value: unknown): Promise<void> {
  await store.put(key, JSON.stringify(value, null, 2), { contentType: 'application/json' });
}

/** Reads a JSON object and parses it with `schema`: what was stored is checked, never trusted through a cast. */
export async function readJson<S extends z.ZodType>(store: ObjectStore, key: string, schema: S): Promise<z.infer<S>> {
  return schema.parse(await getJson(store, key));
}

/** Like readJson, undefined when the object does not exist. */
export async function readJsonIfExists<S extends z.ZodType>(store: ObjectStore, key: string, schema: S): Promise<z.infer<S> | undefined> {
  const value = await getJsonIfExists(store, key);
  return value === undefined ? undefined : schema.parse(value);
}
