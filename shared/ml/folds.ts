/**
 * Stratified k-fold assignment for cross-validation: every class is spread over the
 * folds as evenly as its count allows, so each fold's class mix matches the whole.
 * Deterministic for a seed, so a retried job and a benchmark see the same folds.
 */
import { mulberry32, shuffledIndices } from '../random.js';

export interface Folds {
  /** Fold of each record, 0..k-1; -1 for a record without a label (left out of every fold). */
  fold: Int32Array;
  /** Folds used: the k asked for, fewer when the smallest class has fewer records (at least 2). */
  k: number;
}

export class TooFewForFoldsError extends Error {
  override name = 'TooFewForFoldsError';
}

/**
 * Assigns labelled records (label ≥ 0) to `k` folds, class by class: each class's
 * records are shuffled with the seed, then dealt round-robin, starting where the
 * previous class stopped, so fold sizes differ by at most one overall.
 * @throws TooFewForFoldsError when a class has a single record or fewer than two classes are labelled.
 */
export function stratifiedFolds(labels: ArrayLike<number>, k = 5, seed = 42): Folds {
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!(y >= 0)) continue;
    const list = byClass.get(y) ?? [];
    list.push(i);
    byClass.set(y, list);
  }
  if (byClass.size < 2) throw new TooFewForFoldsError(`cross-validation needs two labelled classes; found ${byClass.size}`);
  const smallest = Math.min(...[...byClass.values()].map((l) => l.length));
  if (smallest < 2) throw new TooFewForFoldsError('cross-validation needs at least two records of every class');
  const folds = Math.max(2, Math.min(k, smallest));
  const fold = new Int32Array(labels.length).fill(-1);
  const rand = mulberry32(seed);
  let next = 0;
  for (const cls of [...byClass.keys()].sort((a, b) => a - b)) {
    const members = byClass.get(cls)!;
    const order = shuffledIndices(members.length, rand);
    for (const j of order) {
      fold[members[j]] = next;
      next = (next + 1) % folds;
    }
  }
  return { fold, k: folds };
}

/** Indices of the records in fold `f` (held out) and of the other labelled records (fitted on). */
export function foldSplit(folds: Folds, f: number): { fit: number[]; held: number[] } {
  const fit: number[] = [];
  const held: number[] = [];
  folds.fold.forEach((g, i) => {
    if (g < 0) return;
    (g === f ? held : fit).push(i);
  });
  return { fit, held };
}
