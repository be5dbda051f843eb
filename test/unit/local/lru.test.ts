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
