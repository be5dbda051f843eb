/**
 * The one shape a split of records takes once it leaves the shards: inputs as a
 * flat count×size array (embeddings, cut activations or feature vectors) and the
 * targets of each task. Training, evaluation, fine-tuning and continual learning
 * all read it; a leaf module so none of them imports another for a type.
 */
import type { SplitName } from '../schemas/report.js';
import type { TaskTargets } from './task-kinds.js';

/** The splits of a prepared dataset, in the order they are stored and reported. */
export const SPLITS: readonly SplitName[] = ['train', 'validation', 'test'];

export interface Split {
  /** count×size inputs, row-major. */
  x: Float32Array;
  count: number;
  /** Per task name: targets of every record (see TaskTargets; -1 or NaN = no label). */
  targets: Record<string, TaskTargets>;
  /**
   * count×units outputs of an earlier model per task: that task learns to match them
   * instead of its hard targets (Learning without Forgetting, Li & Hoiem 2016).
   */
  soft?: Record<string, Float32Array>;
}

/** Rows `index` of a count×`per` array, in that order; the array itself when every row is kept in order. */
export function subsetRows<T extends Uint8Array | Float32Array>(data: T, per: number, index: readonly number[]): T {
  if (index.length * per === data.length && index.every((j, n) => j === n)) return data;
  const out = new (data.constructor as new (n: number) => T)(index.length * per);
  index.forEach((j, n) => out.set(data.subarray(j * per, (j + 1) * per), n * per));
  return out;
}

/** One value per split, computed by `f`. */
export function mapSplits<T>(f: (split: SplitName) => T): Record<SplitName, T> {
  return { train: f('train'), validation: f('validation'), test: f('test') };
}

/** Rows of a then b, with their targets (train + validation: the pool a search or a refit reads). */
export function concatSplits(a: Split, b: Split, size: number): Split {
  const x = new Float32Array((a.count + b.count) * size);
  x.set(a.x.subarray(0, a.count * size));
  x.set(b.x.subarray(0, b.count * size), a.count * size);
  const targets = Object.fromEntries(
    Object.keys(a.targets).map((t) => {
      const ta = a.targets[t];
      const tb = b.targets[t];
      const out = ta instanceof Int32Array ? new Int32Array(ta.length + tb.length) : new Float32Array(ta.length + tb.length);
      out.set(ta);
      out.set(tb, ta.length);
      return [t, out];
    }),
  );
  return { x, count: a.count + b.count, targets };
}
