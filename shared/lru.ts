/**
 * A small LRU map for loaded models. `onEvict` lets the owner free tensors when
 * an entry falls out (tfjs memory is not garbage-collected).
 */
export class LruCache<K, V> {
  private readonly map = new Map<K, V>();

  constructor(
    private readonly capacity: number,
    private readonly onEvict: (key: K, value: V) => void = () => {},
  ) {
    if (capacity < 1) throw new RangeError('capacity must be at least 1');
  }

  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: K, value: V): void {
    if (this.map.has(key)) this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.capacity) {
      const [oldKey, oldValue] = this.map.entries().next().value as [K, V];
      this.map.delete(oldKey);
      this.onEvict(oldKey, oldValue);
    }
  }

  /** The value without touching its recency. */
  peek(key: K): V | undefined {
    return this.map.get(key);
  }

  /** Removes an entry without calling onEvict. */
  delete(key: K): void {
    this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }

  keys(): K[] {
    return [...this.map.keys()];
  }
}

interface Lease<V> {
  value: Promise<V>;
  users: number;
  evicted: boolean;
}

/**
 * An LRU of loaded resources (tfjs models) that are freed when they fall out, but
 * never while a caller is still using one: an evicted entry is disposed when its
 * last user finishes.
 */
export class LeaseCache<K, V> {
  private readonly lru: LruCache<K, Lease<V>>;

  constructor(
    capacity: number,
    private readonly dispose: (value: V) => void,
  ) {
    this.lru = new LruCache(capacity, (_k, lease) => {
      lease.evicted = true;
      this.release(lease);
    });
  }

  /** Runs `fn` with the value for `key`, loading it first if needed. A failed load is not kept. */
  async use<R>(key: K, load: () => Promise<V>, fn: (value: V) => Promise<R>): Promise<R> {
    let lease = this.lru.get(key);
    if (!lease) {
      const created: Lease<V> = { value: load(), users: 0, evicted: false };
      created.value.catch(() => {
        if (this.lru.peek(key) === created) this.lru.delete(key);
      });
      this.lru.set(key, created);
      lease = created;
    }
    lease.users++;
    try {
      return await fn(await lease.value);
    } finally {
      lease.users--;
      this.release(lease);
    }
  }

  get size(): number {
    return this.lru.size;
  }

  private release(lease: Lease<V>): void {
    if (lease.evicted && lease.users === 0) lease.value.then(this.dispose, () => {});
  }
}
