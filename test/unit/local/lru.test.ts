import { describe, expect, it } from 'vitest';
import { LruCache } from '../../../shared/lru.js';

describe('LruCache', () => {
  it('evicts the least recently used entry and reports it', () => {
    // Prepare
    const evicted: string[] = [];
    const lru = new LruCache<string, number>(2, (k) => evicted.push(k));
    lru.set('a', 1);
    lru.set('b', 2);
    // Act
    lru.get('a');
    lru.set('c', 3);
    // Assess
    expect(evicted).toEqual(['b']);
    expect(lru.keys()).toEqual(['a', 'c']);
  });
});

describe('LeaseCache', () => {
  it('frees an evicted value only after its last user is done', async () => {
    // Prepare
    const { LeaseCache } = await import('../../../shared/lru.js');
    const disposed: string[] = [];
    const cache = new LeaseCache<string, string>(1, (v) => disposed.push(v));
    let finishA!: () => void;
    const usingA = cache.use(
      'a',
      async () => 'A',
      (v) => new Promise<string>((resolve) => (finishA = () => resolve(v))),
    );
    await new Promise((r) => setImmediate(r));
    // Act: loading b evicts a while a is still in use.
    await cache.use(
      'b',
      async () => 'B',
      async (v) => v,
    );
    // Assess
    expect(disposed).toEqual([]);
    finishA();
    expect(await usingA).toBe('A');
    await new Promise((r) => setImmediate(r));
    expect(disposed).toEqual(['A']);
  });

  it('does not keep a failed load', async () => {
    const { LeaseCache } = await import('../../../shared/lru.js');
    const cache = new LeaseCache<string, string>(2, () => {});
    let calls = 0;
    const load = async () => {
      calls++;
      if (calls === 1) throw new Error('transient');
      return 'ok';
    };
    await expect(cache.use('k', load, async (v) => v)).rejects.toThrow('transient');
    await new Promise((r) => setImmediate(r));
    expect(await cache.use('k', load, async (v) => v)).toBe('ok');
    expect(calls).toBe(2);
  });
});
