import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError, type ObjectStore } from '../../shared/ports/object-store.js';

export interface ContractSubject {
  store: ObjectStore;
  /** Whether a presigned URL can be used for a real upload here (needs a server). */
  servesPresignedUploads: boolean;
  /** Cases this implementation cannot honour, with the reason shown in the test name. */
  skips?: Partial<Record<ContractCase, string>>;
  dispose(): Promise<void>;
}

export type ContractCase = 'putIfAbsent-atomic';

/**
 * The one behavioural contract of the ObjectStore port, run against every
 * adapter: what handlers may rely on whatever the bucket is.
 */
export function describeObjectStoreContract(name: string, create: () => Promise<ContractSubject>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let subject: ContractSubject;
    let store: ObjectStore;

    beforeAll(async () => {
      subject = await create();
      store = subject.store;
    });
    afterAll(async () => {
      await subject?.dispose();
    });

    it('returns the bytes that were put, binary included', async () => {
      const bytes = Buffer.from([0, 1, 2, 250, 255]);

      await store.put('c/put/blob.bin', bytes);
      await store.put('c/put/text.json', '{"a":1}', { contentType: 'application/json' });

      expect(Buffer.compare(await store.get('c/put/blob.bin'), bytes)).toBe(0);
      expect((await store.get('c/put/text.json')).toString('utf8')).toBe('{"a":1}');
    });

    it('replaces an object whole on a second put', async () => {
      await store.put('c/replace/k', 'a much longer first body');
      await store.put('c/replace/k', 'short');

      expect((await store.get('c/replace/k')).toString()).toBe('short');
    });

    it('throws NotFoundError for a missing key', async () => {
      await expect(store.get('c/missing/nothing.json')).rejects.toBeInstanceOf(NotFoundError);
    });

    it('keeps keys with spaces, plus signs and non-ASCII letters as given', async () => {
      const key = 'c/keys/my pets/chat+été.jpg';

      await store.put(key, 'x');

      expect((await store.get(key)).toString()).toBe('x');
      expect((await store.list('c/keys/')).map((o) => o.key)).toEqual([key]);
    });

    it('putIfAbsent creates once and leaves the first body in place', async () => {
      const first = await store.putIfAbsent('c/once/marker.json', 'first');
      const second = await store.putIfAbsent('c/once/marker.json', 'second');

      expect([first, second]).toEqual([true, false]);
      expect((await store.get('c/once/marker.json')).toString()).toBe('first');
    });

    const atomicSkip = (): string | undefined => subject?.skips?.['putIfAbsent-atomic'];
    it('putIfAbsent lets exactly one of several concurrent writers win', async (ctx) => {
      const reason = atomicSkip();
      if (reason) ctx.skip(reason);

      const results = await Promise.all(Array.from({ length: 5 }, (_, i) => store.putIfAbsent('c/race/marker', `writer-${i}`)));

      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect((await store.get('c/race/marker')).toString()).toBe(`writer-${winner}`);
    });

    it('lists objects under a prefix, sorted by key, with sizes', async () => {
      await store.put('c/list/b/2.txt', '22');
      await store.put('c/list/a/1.txt', '1');
      await store.put('c/list/b/10.txt', '1010');
      await store.put('c/listing-not-in-prefix.txt', 'x');

      const all = await store.list('c/list/');
      const partial = await store.list('c/list/b/1');

      expect(all.map((o) => [o.key, o.size])).toEqual([
        ['c/list/a/1.txt', 1],
        ['c/list/b/10.txt', 4],
        ['c/list/b/2.txt', 2],
      ]);
      expect(partial.map((o) => o.key)).toEqual(['c/list/b/10.txt']);
      expect(await store.list('c/nothing-here/')).toEqual([]);
    });

    it('lists past one page of results', async () => {
      // 1,000 is S3's page size; 1,005 objects force a continuation token.
      const keys = Array.from({ length: 1005 }, (_, i) => `c/many/${String(i).padStart(4, '0')}`);
      for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((k) => store.put(k, '')));

      const listed = await store.list('c/many/');

      expect(listed.map((o) => o.key)).toEqual(keys);
    });

    it('deletes an object, and deleting a missing key is not an error', async () => {
      await store.put('c/del/k', 'v');

      await store.delete('c/del/k');
      await store.delete('c/del/never-was');

      await expect(store.get('c/del/k')).rejects.toBeInstanceOf(NotFoundError);
      expect(await store.list('c/del/')).toEqual([]);
    });

    it('presignPut returns a URL, with the headers to send, that accepts an upload', async () => {
      const signed = await store.presignPut('c/presigned/photo 1.jpg', { expiresIn: 300, contentType: 'image/jpeg' });

      expect(new URL(signed.url).protocol).toMatch(/^https?:$/);
      expect(signed.headers).toEqual({ 'content-type': 'image/jpeg' });
      if (!subject.servesPresignedUploads) return;
      const res = await fetch(signed.url, { method: 'PUT', headers: signed.headers, body: 'jpeg bytes' });
      expect(res.status).toBe(200);
      expect((await store.get('c/presigned/photo 1.jpg')).toString()).toBe('jpeg bytes');
    });
  });
}
