import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isSafeRelativePath, RESERVED_KEY_PREFIX } from '../../schemas/common.js';
import { NotFoundError, type ObjectInfo, type ObjectStore, type PresignedPut, type PutOptions } from '../../ports/object-store.js';

const TMP_PREFIX = RESERVED_KEY_PREFIX;

export interface FsObjectStoreOptions {
  /** Folder that plays the bucket. */
  root: string;
  /** Called after an object is created or replaced, as S3 would notify. */
  onObjectCreated?: (info: ObjectInfo) => void;
  /** Needed for presignPut: where the local HTTP server accepts signed uploads. */
  presign?: { baseUrl: string; secret: string; bucket: string };
}

export class InvalidKeyError extends Error {
  override name = 'InvalidKeyError';
}

/** Checks a key the way the local bucket needs it: relative, no `..`, no empty segment. */
export function assertSafeKey(key: string): void {
  if (!isSafeRelativePath(key)) {
    throw new InvalidKeyError(`invalid object key: ${JSON.stringify(key)}`);
  }
}

function signature(secret: string, bucket: string, key: string, expires: number): string {
  return createHmac('sha256', secret).update(`${bucket}\n${key}\n${expires}`).digest('hex');
}

/** Verifies a signed local upload URL's parameters (see `FsObjectStore.presignPut`). */
export function verifyLocalUploadSignature(secret: string, bucket: string, key: string, expires: number, sig: string, now = Date.now()): boolean {
  if (!Number.isFinite(expires) || expires * 1000 < now) return false;
  const expected = Buffer.from(signature(secret, bucket, key, expires), 'hex');
  const given = Buffer.from(sig, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * The embedded default's bucket: a folder on disk. Writes go to a temporary file
 * that is renamed into place, so readers never see half an object.
 */
export class FsObjectStore implements ObjectStore {
  private readonly root: string;
  private readonly etags = new Map<string, { mtimeMs: number; size: number; etag: string }>();

  constructor(private readonly options: FsObjectStoreOptions) {
    this.root = path.resolve(options.root);
  }

  private pathOf(key: string): string {
    assertSafeKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  async get(key: string): Promise<Buffer> {
    try {
      return await fs.readFile(this.pathOf(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EISDIR' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new NotFoundError(key);
      throw err;
    }
  }

  private async writeTemp(file: string, body: Buffer | Uint8Array | string): Promise<string> {
    await fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = path.join(path.dirname(file), `${TMP_PREFIX}${randomBytes(6).toString('hex')}`);
    await fs.writeFile(tmp, body);
    return tmp;
  }

  private async stat(key: string, file: string): Promise<ObjectInfo> {
    const st = await fs.stat(file);
    return { key, size: st.size, lastModified: st.mtime, etag: await this.etag(file, st) };
  }

  async put(key: string, body: Buffer | Uint8Array | string, _options?: PutOptions): Promise<void> {
    const file = this.pathOf(key);
    const tmp = await this.writeTemp(file, body);
    await fs.rename(tmp, file);
    this.options.onObjectCreated?.(await this.stat(key, file));
  }

  async putIfAbsent(key: string, body: Buffer | Uint8Array | string, _options?: PutOptions): Promise<boolean> {
    const file = this.pathOf(key);
    const tmp = await this.writeTemp(file, body);
    try {
      // link() fails with EEXIST when the target exists: an atomic create-if-absent
      // that still publishes the complete content in one step.
      await fs.link(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    } finally {
      await fs.rm(tmp, { force: true });
    }
    this.options.onObjectCreated?.(await this.stat(key, file));
    return true;
  }

  private async etag(file: string, st: { mtimeMs: number; size: number }): Promise<string> {
    const cached = this.etags.get(file);
    if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached.etag;
    const etag = createHash('md5').update(await fs.readFile(file)).digest('hex');
    this.etags.set(file, { mtimeMs: st.mtimeMs, size: st.size, etag });
    return etag;
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    // Start from the deepest folder the prefix names, then filter by the rest.
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash >= 0 ? prefix.slice(0, slash) : '';
    if (dirKey) assertSafeKey(dirKey);
    const start = dirKey ? path.join(this.root, ...dirKey.split('/')) : this.root;
    const walk = async (dir: string, keyPrefix: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
        throw err;
      }
      for (const e of entries) {
        if (e.name.startsWith(TMP_PREFIX)) continue;
        const key = keyPrefix ? `${keyPrefix}/${e.name}` : e.name;
        if (e.isDirectory()) {
          if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) await walk(path.join(dir, e.name), key);
        } else if (e.isFile() && key.startsWith(prefix)) {
          out.push(await this.stat(key, path.join(dir, e.name)));
        }
      }
    };
    await walk(start, dirKey);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.pathOf(key), { force: true });
  }

  async presignPut(key: string, options: { expiresIn: number; contentType?: string }): Promise<PresignedPut> {
    assertSafeKey(key);
    const p = this.options.presign;
    if (!p) throw new Error('this local store was created without presign settings');
    const expires = Math.floor(Date.now() / 1000) + options.expiresIn;
    const url = `${p.baseUrl.replace(/\/$/, '')}/_objects/${encodeURIComponent(p.bucket)}/${key.split('/').map(encodeURIComponent).join('/')}?expires=${expires}&sig=${signature(p.secret, p.bucket, key, expires)}`;
    return { url, headers: options.contentType ? { 'content-type': options.contentType } : {} };
  }
}
