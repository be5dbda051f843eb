import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, promises as fs, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { isSafeRelativePath, RESERVED_KEY_PREFIX } from '../../schemas/common.js';
import { NotFoundError, type ObjectInfo, type ObjectStore, type PresignedPut, type PutOptions } from '../../ports/object-store.js';

const TMP_PREFIX = RESERVED_KEY_PREFIX;

export interface FsObjectStoreOptions {
  /** Folder that plays the bucket. */
  root: string;
  /** Called after an object is created or replaced, as S3 would notify. */
  onObjectCreated?: (info: ObjectInfo) => void;
  /**
   * Which keys onObjectCreated is called for, as an S3 notification's prefix/suffix
   * filter. Others are not stat'ed or hashed for it: the MD5 etag rereads the object
   * (measured: ~0.3 s of a 500-image preprocessing, every shard read back). @default every key
   */
  notifyFilter?: (key: string) => boolean;
  /** Needed for presignPut: where the local HTTP server accepts signed uploads. */
  presign?: { baseUrl: string; secret: string; bucket: string };
  /**
   * Fault injection for tests of full and read-only disks (`TL_FS_FAULT_FILE` in
   * the job's environment): while this file exists, every write fails with the
   * errno named in it (`ENOSPC`, `EROFS`), in every process that shares the path,
   * the way a real full disk fails the server and the training child alike.
   *
   * `CODE@<regex>` arms the fault instead: writes go through until the first one
   * whose key matches the regex, which fails and turns the file into plain `CODE`
   * for every process from then on. Tests use it to fail a precise write (say
   * the second file of a version) rather than race a job to a phase.
   */
  faultFile?: string;
}

/** A streamed object grew past the limit it was accepted with; nothing was stored. */
export class ObjectTooLargeError extends Error {
  override name = 'ObjectTooLargeError';
  constructor(readonly limit: number) {
    super(`object exceeds the limit of ${limit} bytes`);
  }
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
export function verifyLocalUploadSignature(secret: string, bucket: string, key: string, expires: number | string, sig: string, now = Date.now()): boolean {
  // Parse strictly: Buffer.from(hex) silently drops what follows the first non-hex
  // character and Number() takes "1e10" or " 12 ", so both are checked by shape first.
  if (!/^[0-9a-f]{64}$/.test(sig)) return false;
  const text = String(expires);
  if (!/^[1-9][0-9]{0,12}$/.test(text)) return false;
  const when = Number(text);
  if (when * 1000 < now) return false;
  const expected = Buffer.from(signature(secret, bucket, key, when), 'hex');
  return timingSafeEqual(Buffer.from(sig, 'hex'), expected);
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
      if (
        (err as NodeJS.ErrnoException).code === 'ENOENT' ||
        (err as NodeJS.ErrnoException).code === 'EISDIR' ||
        (err as NodeJS.ErrnoException).code === 'ENOTDIR'
      )
        throw new NotFoundError(key);
      throw err;
    }
  }

  /** Throws the injected fault, if one is set (see `faultFile`). */
  private checkFault(op: string, file: string): void {
    const f = this.options.faultFile;
    if (!f || !existsSync(f)) return;
    const text = readFileSync(f, 'utf8').trim();
    const at = text.indexOf('@');
    const code = (at >= 0 ? text.slice(0, at) : text) || 'ENOSPC';
    if (at >= 0) {
      const key = path.relative(this.root, file).split(path.sep).join('/');
      if (!new RegExp(text.slice(at + 1)).test(key)) return;
      writeFileSync(f, code);
    }
    const err: NodeJS.ErrnoException = new Error(`${code}: injected fault, ${op} '${file}'`);
    err.code = code;
    throw err;
  }

  /** A fresh temporary file beside `file`, its folder created; recreated once if a concurrent delete removed the folder. */
  private async tempPath(file: string): Promise<string> {
    this.checkFault('write', file);
    await fs.mkdir(path.dirname(file), { recursive: true });
    return path.join(path.dirname(file), `${TMP_PREFIX}${randomBytes(6).toString('hex')}`);
  }

  private async writeTemp(file: string, body: Buffer | Uint8Array | string): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const tmp = await this.tempPath(file);
      try {
        await fs.writeFile(tmp, body, { flag: 'wx' });
        return tmp;
      } catch (err) {
        // A full or read-only disk leaves a partial temp file: never leave it behind.
        await fs.rm(tmp, { force: true }).catch(() => undefined);
        // delete() prunes empty folders; a writer that raced it retries once.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && attempt === 0) continue;
        throw err;
      }
    }
  }

  /**
   * Streams a body into the object (used for local signed uploads), holding one
   * chunk in memory at a time; the object appears only once the body is complete.
   * On any failure (limit, disk, client gone) nothing is stored and the body is left
   * paused, unconsumed, for the caller to drain or close.
   * @throws ObjectTooLargeError when the body exceeds `maxBytes`
   */
  async putStream(key: string, body: Readable, maxBytes: number): Promise<void> {
    const file = this.pathOf(key);
    const tmp = await this.tempPath(file);
    const handle = await fs.open(tmp, 'wx');
    // The etag is hashed from the bytes as they pass, so a listing never rereads an upload for it.
    const md5 = createHash('md5');
    try {
      await new Promise<void>((resolve, reject) => {
        let size = 0;
        let pending: Promise<unknown> = Promise.resolve();
        let settled = false;
        const finish = (err?: unknown) => {
          if (settled) return;
          settled = true;
          body.off('data', onData);
          body.off('end', onEnd);
          body.off('error', finish);
          body.off('aborted', onAborted);
          body.pause();
          if (err) reject(err instanceof Error ? err : new Error('the upload stream failed', { cause: err }));
          else resolve();
        };
        const onData = (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) return finish(new ObjectTooLargeError(maxBytes));
          body.pause();
          md5.update(chunk);
          pending = handle.write(chunk).then(
            () => !settled && body.resume(),
            (err: unknown) => finish(err),
          );
        };
        const onEnd = () => void pending.then(() => finish(), finish);
        const onAborted = () => finish(new Error('the client closed the connection before the upload was complete'));
        body.on('data', onData);
        body.once('end', onEnd);
        body.once('error', finish);
        body.once('aborted', onAborted);
        body.resume();
      });
      // The written file's own mtime and size key the etag (a rename keeps both), so a later replacement is hashed anew.
      const st = await handle.stat();
      await handle.close();
      this.checkFault('rename', file);
      await fs.rename(tmp, file);
      // Kept only if the file is still the one written (no other writer replaced it since).
      const now = await fs.stat(file).catch(() => undefined);
      if (now?.ino === st.ino) this.etags.set(file, { mtimeMs: st.mtimeMs, size: st.size, etag: md5.digest('hex') });
    } catch (err) {
      await handle.close().catch(() => undefined);
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
    await this.notify(key, file);
  }

  private async notify(key: string, file: string): Promise<void> {
    const { onObjectCreated, notifyFilter } = this.options;
    if (onObjectCreated && (!notifyFilter || notifyFilter(key))) onObjectCreated(await this.stat(key, file));
  }

  private async stat(key: string, file: string): Promise<ObjectInfo> {
    const st = await fs.stat(file);
    return { key, size: st.size, lastModified: st.mtime, etag: await this.etag(file, st) };
  }

  async put(key: string, body: Buffer | Uint8Array | string, _options?: PutOptions): Promise<void> {
    const file = this.pathOf(key);
    const tmp = await this.writeTemp(file, body);
    try {
      await fs.rename(tmp, file);
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
    await this.notify(key, file);
  }

  async putIfAbsent(key: string, body: Buffer | Uint8Array | string, _options?: PutOptions): Promise<boolean> {
    const file = this.pathOf(key);
    const tmp = await this.writeTemp(file, body);
    try {
      this.checkFault('link', file);
      // link() fails with EEXIST when the target exists: an atomic create-if-absent
      // that still publishes the complete content in one step.
      await fs.link(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    } finally {
      await fs.rm(tmp, { force: true });
    }
    await this.notify(key, file);
    return true;
  }

  private async etag(file: string, st: { mtimeMs: number; size: number }): Promise<string> {
    const cached = this.etags.get(file);
    if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached.etag;
    // Hashed as a stream: an uploaded object may be 100 MB, and several are hashed at once.
    const hash = createHash('md5');
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    const etag = hash.digest('hex');
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
    const file = this.pathOf(key);
    this.checkFault('delete', file);
    await fs.rm(file, { force: true });
    this.etags.delete(file);
    // S3 has no folders: prune the ones this delete emptied, so deleted checkpoints
    // and versions leave nothing behind (rmdir refuses a folder that is not empty).
    for (let dir = path.dirname(file); dir.startsWith(`${this.root}${path.sep}`); dir = path.dirname(dir)) {
      try {
        await fs.rmdir(dir);
      } catch {
        break;
      }
    }
  }

  /**
   * Removes what interrupted writes left behind: temporary files older than
   * `olderThanMs` (a crash or a full disk between write and rename) and empty
   * folders. Objects themselves are never touched. Returns what it removed.
   */
  async sweep(olderThanMs = 0, now = Date.now()): Promise<{ tempFiles: number; folders: number }> {
    const removed = { tempFiles: 0, folders: 0 };
    const walk = async (dir: string): Promise<boolean> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch {
        return false;
      }
      let left = entries.length;
      for (const e of entries) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) {
          if (await walk(p)) left--;
        } else if (e.name.startsWith(TMP_PREFIX)) {
          const st = await fs.stat(p).catch(() => undefined);
          if (
            st &&
            now - st.mtimeMs >= olderThanMs &&
            (await fs.rm(p, { force: true }).then(
              () => true,
              () => false,
            ))
          ) {
            removed.tempFiles++;
            left--;
          }
        }
      }
      if (left > 0 || dir === this.root) return false;
      const ok = await fs.rmdir(dir).then(
        () => true,
        () => false,
      );
      if (ok) removed.folders++;
      return ok;
    };
    await walk(this.root);
    return removed;
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
