import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../../../shared/adapters/local/fs-object-store.js';
import type { ObjectInfo } from '../../../../shared/ports/object-store.js';

describe('FsObjectStore notifications', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tl-notify-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('notifies only the keys its filter passes, with size and MD5 etag, for put, putIfAbsent and putStream', async () => {
    const seen: ObjectInfo[] = [];
    const store = new FsObjectStore({ root: dir, onObjectCreated: (i) => seen.push(i), notifyFilter: (k) => k.endsWith('/train.json') });
    const spec = Buffer.from('{"model":"m"}');
    await store.put('datasets/a/shards/x.bin', Buffer.alloc(1000));
    await store.put('datasets/a/train.json', spec);
    await store.putIfAbsent('datasets/b/img.png', Buffer.from('png'));
    await store.putIfAbsent('datasets/b/train.json', spec);
    await store.putStream('datasets/c/img.png', Readable.from([Buffer.from('x')]), 10);
    await store.putStream('datasets/c/train.json', Readable.from([spec]), 100);
    const md5 = createHash('md5').update(spec).digest('hex');
    expect(seen.map((i) => [i.key, i.size, i.etag])).toEqual([
      ['datasets/a/train.json', spec.length, md5],
      ['datasets/b/train.json', spec.length, md5],
      ['datasets/c/train.json', spec.length, md5],
    ]);
  });

  it('notifies every key without a filter', async () => {
    const seen: string[] = [];
    const store = new FsObjectStore({ root: dir, onObjectCreated: (i) => seen.push(i.key) });
    await store.put('a/b.bin', Buffer.alloc(3));
    await store.put('a/train.json', '{}');
    expect(seen).toEqual(['a/b.bin', 'a/train.json']);
  });
});
