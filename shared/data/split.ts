import { createHash } from 'node:crypto';
import type { LabelValue } from '../schemas/manifest.js';
import type { SplitName } from '../schemas/report.js';
import type { Task } from '../schemas/spec.js';

/**
 * Train / validation / test assignment by a hash of each record's key.
 *
 * A record's split depends on its key alone (not on the seed, the other files or
 * their order), so adding files never moves an existing record between splits: a
 * test image stays a test image across retrains, which keeps test figures of
 * successive versions comparable and keeps continual learning from training on
 * what an earlier version was tested on. Keys are relative to the dataset folder,
 * so renaming or copying a dataset keeps its split too.
 */

export interface SplitFractions {
  /** Share of records held out for validation (early stopping). */
  validationFraction: number;
  /** Share of records held out for the final test. */
  testFraction: number;
}

/** A key's position in [0, 1): the first 48 bits of its SHA-256, exact in a double. */
export function hashUnit(key: string): number {
  const digest = createHash('sha256').update(key, 'utf8').digest();
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/**
 * The split a key falls in by hash alone: [0, test) → test,
 * [test, test + validation) → validation, the rest → train.
 */
export function splitOfKey(key: string, fractions: SplitFractions): SplitName {
  return splitOfUnit(hashUnit(key), fractions);
}

function splitOfUnit(u: number, fractions: SplitFractions): SplitName {
  if (u < fractions.testFraction) return 'test';
  if (u < fractions.testFraction + fractions.validationFraction) return 'validation';
  return 'train';
}

export interface SplitRecord {
  /** Key relative to the dataset, e.g. `cat/001.jpg`. */
  key: string;
  labels: Record<string, LabelValue | null>;
}

/**
 * Assigns every record a split. Records of a class that the hash put entirely into
 * validation/test would leave the model unable to learn that class at all, so for
 * each classification and multilabel task, a class with no training record gets
 * one moved into train: the one with the highest hash position, i.e. the record
 * nearest the train range. That choice depends only on the class's own keys and
 * is undone by itself once the class gets a record the hash sends to train; every
 * other record keeps its hash split. Classes always keep every record they have,
 * so a class with one record trains on it.
 *
 * @returns the split of each record, in the order given.
 */
export function assignSplits(records: readonly SplitRecord[], fractions: SplitFractions, tasks: readonly Pick<Task, 'name' | 'type'>[]): SplitName[] {
  const units = records.map((r) => hashUnit(r.key));
  const splits = units.map((u) => splitOfUnit(u, fractions));

  for (const task of tasks) {
    if (task.type !== 'classification' && task.type !== 'multilabel') continue;
    // Per class: whether it has a training record, and its best candidate to move.
    const classes = new Map<string, { hasTrain: boolean; best: number }>();
    records.forEach((r, i) => {
      for (const cls of classNames(r.labels[task.name])) {
        const entry = classes.get(cls) ?? { hasTrain: false, best: -1 };
        if (splits[i] === 'train') entry.hasTrain = true;
        else if (entry.best < 0 || units[i] > units[entry.best] || (units[i] === units[entry.best] && r.key > records[entry.best].key)) entry.best = i;
        classes.set(cls, entry);
      }
    });
    // In sorted class order, so the outcome does not depend on the records' order.
    for (const cls of [...classes.keys()].sort()) {
      const entry = classes.get(cls)!;
      if (entry.hasTrain || entry.best < 0) continue;
      splits[entry.best] = 'train';
      // A multilabel record also gives its other classes a training record.
      for (const c of classNames(records[entry.best].labels[task.name])) classes.get(c)!.hasTrain = true;
    }
  }
  return splits;
}

/** Class names a label value carries for a classification or multilabel task. */
function classNames(value: LabelValue | null | undefined): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}
