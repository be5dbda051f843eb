import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { decodeShard, encodeShard, encodeShardFrom, readSplit, ShardFormatError, type Shard } from '../../../shared/data/shards.js';
import { TrainSpecSchema } from '../../../shared/schemas/spec.js';
import type { DatasetReport } from '../../../shared/schemas/report.js';

const pixels = (n: number, shape: number[]) => Uint8Array.from({ length: n * shape.reduce((a, b) => a * b, 1) }, (_, i) => (i * 7) % 256);

describe('shards', () => {
  it('round-trips uint8 images with their keys and partial labels', () => {
    // Prepare
    const shard: Shard = {
      split: 'train',
      dtype: 'uint8',
      shape: [4, 3, 3],
      records: [
        { key: 'a/1.png', labels: { class: 'a', box: [0.1, 0.2] } },
        { key: 'b/2.png', labels: { class: 'b', box: null } },
      ],
      data: pixels(2, [4, 3, 3]),
    };
    // Act
    const back = decodeShard(encodeShard(shard));
    // Assess
    expect(back).toEqual(shard);
  });

  it('round-trips float32 features bit for bit, aligned whatever the header length', () => {
    for (const key of ['x', 'xy', 'xyz', 'wxyz']) {
      const data = Float32Array.from([1.5, -0, Number.MIN_VALUE, 3.4e38, -7.25, 1 / 3]);
      const shard: Shard = {
        split: 'test',
        dtype: 'float32',
        shape: [3],
        records: [
          { key, labels: {} },
          { key: `${key}2`, labels: {} },
        ],
        data,
      };
      const buf = encodeShard(shard);
      expect((buf.readUInt32LE(0) + 4) % 4).toBe(0);
      expect(Array.from(decodeShard(buf).data as Float32Array)).toEqual(Array.from(data));
    }
  });

  it('refuses data of the wrong length and truncated bytes', () => {
    expect(() => encodeShard({ split: 'train', dtype: 'uint8', shape: [2], records: [{ key: 'k', labels: {} }], data: new Uint8Array(3) })).toThrow(
      ShardFormatError,
    );
    const buf = encodeShard({ split: 'train', dtype: 'uint8', shape: [2], records: [{ key: 'k', labels: {} }], data: new Uint8Array(2) });
    expect(() => decodeShard(buf.subarray(0, buf.length - 1))).toThrow(ShardFormatError);
    expect(() => decodeShard(Buffer.from([1, 0]))).toThrow(ShardFormatError);
  });

  it('writes a shard from one array per record, byte for byte as from the joined array, and refuses a wrong total', () => {
    const shape = [2, 2, 3];
    const records = [0, 1, 2].map((i) => ({ key: `k${i}`, labels: { class: `c${i}` } }));
    const data = pixels(3, shape);
    const parts = [0, 1, 2].map((i) => data.slice(i * 12, (i + 1) * 12));
    const header = { split: 'train' as const, dtype: 'uint8' as const, shape, records };
    expect(encodeShardFrom(header, parts).equals(encodeShard({ ...header, data }))).toBe(true);
    expect(() => encodeShardFrom(header, parts.slice(1))).toThrow(ShardFormatError);
  });

  it('reads a split of one shard in place, float32 values too, and refuses shards of mixed types', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tl-shards-'));
    try {
      const store = new FsObjectStore({ root: dir });
      const features = Float32Array.from([0.5, -2, 1e-7, 3]);
      const one = {
        split: 'validation' as const,
        dtype: 'float32' as const,
        shape: [2],
        records: [0, 1].map((i) => ({ key: `v${i}`, labels: {} })),
        data: features,
      };
      await store.put('p/validation-0.bin', encodeShard(one));
      const images = { split: 'test' as const, dtype: 'uint8' as const, shape: [2], records: [{ key: 't', labels: {} }], data: Uint8Array.from([7, 9]) };
      await store.put('p/test-0.bin', encodeShard(images));
      await store.put('p/test-1.bin', encodeShard({ ...one, split: 'test' }));
      const report = {
        inputShape: [2],
        shards: [
          { key: 'p/validation-0.bin', split: 'validation' as const, count: 2 },
          { key: 'p/test-0.bin', split: 'test' as const, count: 1 },
          { key: 'p/test-1.bin', split: 'test' as const, count: 2 },
        ],
      } as unknown as DatasetReport;
      const read = await readSplit(store, report, 'validation');
      expect(read.data).toBeInstanceOf(Float32Array);
      // In place: a view into the bytes read, after the header (a copy would start at offset 0).
      expect(read.data.byteOffset).toBeGreaterThan(0);
      expect(Array.from(read.data)).toEqual(Array.from(features));
      expect(read.records.map((r) => r.key)).toEqual(['v0', 'v1']);
      await expect(readSplit(store, report, 'test')).rejects.toThrow(/mix data types/);
      expect((await readSplit(store, { ...report, shards: [] }, 'train')).data).toHaveLength(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('joins the shards of one split in report order', async () => {
    // Prepare
    const dir = await mkdtemp(path.join(tmpdir(), 'tl-shards-'));
    try {
      const store = new FsObjectStore({ root: dir });
      const shape = [2, 2, 3];
      const parts = [0, 1].map((i) => ({
        split: 'train' as const,
        dtype: 'uint8' as const,
        shape,
        records: [{ key: `k${i}`, labels: { class: `c${i}` } }],
        data: pixels(1, shape).map((v) => v + i),
      }));
      for (const [i, p] of parts.entries()) await store.put(`prepared/d/h/shards/train-${i}.bin`, encodeShard(p));
      const report = {
        inputShape: shape,
        shards: parts.map((p, i) => ({ key: `prepared/d/h/shards/train-${i}.bin`, split: 'train' as const, count: 1 })),
        spec: TrainSpecSchema.parse({}),
      } as unknown as DatasetReport;
      // Act
      const joined = await readSplit(store, report, 'train');
      // Assess
      expect(joined.records.map((r) => r.key)).toEqual(['k0', 'k1']);
      expect(Array.from(joined.data)).toEqual([...parts[0].data, ...parts[1].data]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
