/**
 * What differs between task types (classification, multilabel, regression): the
 * output layer, how labels become targets, the masked loss, and how outputs become
 * a prediction. One small strategy per type in a registry keyed by the spec's
 * `TaskTypeSchema`.
 */
import type { Tensor } from '@tensorflow/tfjs';
import type { LabelValue } from '../schemas/manifest.js';
import type { TaskHead } from '../schemas/model.js';
import type { TaskPrediction } from '../schemas/predict.js';
import type { Tf } from '../tf/loader.js';
import { UserError } from '../errors.js';

export type TaskType = TaskHead['type'];

/**
 * Targets of one task for a set of records.
 * - classification: Int32Array, the class index per record, -1 where the record has
 *   no label for the task;
 * - multilabel: Float32Array count×labels of 0/1;
 * - regression: Float32Array count×size in real units.
 * A record without a label has an all-NaN row in the Float32Array cases: nothing is
 * ever filled in for a missing label, and the loss and metrics skip the row.
 */
export type TaskTargets = Int32Array | Float32Array;

export interface TaskKind {
  /** Units of the task's output layer. */
  outputUnits(head: TaskHead): number;
  activation: 'softmax' | 'sigmoid' | 'linear';
  /** Turns per-record label values (null/undefined = missing) into targets; throws on an unknown value. */
  encodeLabels(values: Array<LabelValue | null | undefined>, head: TaskHead): TaskTargets;
  /**
   * count×units matrix the loss reads: one-hot classes, 0/1 labels, or standardised
   * regression values (with the head's mean/std). Unlabelled rows are all zero; the
   * loss masks them out.
   */
  targetMatrix(targets: TaskTargets, units: number, head?: TaskHead): Float32Array;
  /** Whether record `i` of `count` has a label (the mask of the loss and the metrics). */
  hasLabel(targets: TaskTargets, i: number, count?: number): boolean;
  /**
   * Loss on a batch, averaged over the labelled records only (0 when none is).
   * @param mask 1 per labelled row, 0 otherwise; classification derives it from the
   *   all-zero rows when absent, the other kinds then count every row.
   */
  loss(tf: Tf, yTrue: Tensor, yPred: Tensor, mask?: Tensor): Tensor;
  /**
   * Loss of matching an earlier model's outputs `yTrue` (soft targets) on every row:
   * what keeps an old head close to what it answered before (Learning without
   * Forgetting, Li & Hoiem 2016). `temperature` softens class probabilities.
   */
  distill(tf: Tf, yTrue: Tensor, yPred: Tensor, temperature: number): Tensor;
  /** One record's outputs as the predict API returns them. */
  format(outputs: Float32Array, head: TaskHead, topK: number): TaskPrediction;
}

export class UnsupportedTaskTypeError extends UserError {
  override name = 'UnsupportedTaskTypeError';
  constructor(message: string) {
    super('UNSUPPORTED_SPEC', message);
  }
}

export class LabelError extends UserError {
  override name = 'LabelError';
  constructor(message: string) {
    super('INVALID_DATASET', message);
  }
}

const labelsOf = (head: TaskHead, min = 2): string[] => {
  if (!head.labels || head.labels.length < min) {
    throw new LabelError(`task "${head.name}" needs at least ${min} class${min === 1 ? '' : 'es'}, has ${head.labels?.length ?? 0}`);
  }
  return head.labels;
};

/** Values per record of a task's targets (1 for classification). */
export function targetWidth(targets: TaskTargets, count: number): number {
  if (targets instanceof Int32Array) return 1;
  return count > 0 ? targets.length / count : 0;
}

/** Whether record `i` of `count` has a label, whatever the task type. */
export function isLabelled(targets: TaskTargets, count: number, i: number): boolean {
  if (targets instanceof Int32Array) return targets[i] >= 0;
  return !Number.isNaN(targets[i * targetWidth(targets, count)]);
}

/** Records of `count` that carry a label. */
export function countLabelled(targets: TaskTargets, count: number): number {
  let n = 0;
  for (let i = 0; i < count; i++) if (isLabelled(targets, count, i)) n++;
  return n;
}

/** 1/0 per record: the loss mask. */
export function labelMask(targets: TaskTargets, count: number): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => (isLabelled(targets, count, i) ? 1 : 0));
}

/** The targets of the records at `index`, in that order. */
export function selectTargets(targets: TaskTargets, count: number, index: readonly number[]): TaskTargets {
  if (targets instanceof Int32Array) return Int32Array.from(index, (i) => targets[i]);
  const w = targetWidth(targets, count);
  const out = new Float32Array(index.length * w);
  index.forEach((j, n) => out.set(targets.subarray(j * w, (j + 1) * w), n * w));
  return out;
}

/** Σ over rows of per-row losses × mask, divided by the labelled rows (at least 1). */
function maskedMean(tf: Tf, perRow: Tensor, mask: Tensor): Tensor {
  return tf.div(tf.sum(tf.mul(perRow, mask)), tf.maximum(tf.sum(mask), 1));
}

export const classificationKind: TaskKind = {
  outputUnits: (head) => labelsOf(head).length,
  activation: 'softmax',
  encodeLabels(values, head) {
    const index = new Map(labelsOf(head).map((l, i) => [l, i]));
    return Int32Array.from(values, (v) => {
      if (v === null || v === undefined) return -1;
      if (typeof v !== 'string') throw new LabelError(`task "${head.name}" is a classification task; got the label ${JSON.stringify(v)}`);
      const i = index.get(v);
      if (i === undefined) throw new LabelError(`task "${head.name}" has no class "${v}"`);
      return i;
    });
  },
  targetMatrix(targets, k) {
    const y = new Float32Array(targets.length * k);
    targets.forEach((c, i) => {
      if (c >= 0) y[i * k + c] = 1;
    });
    return y;
  },
  hasLabel: (targets, i) => targets[i] >= 0,
  loss(tf, yTrue, yPred, mask) {
    // Masked cross-entropy: rows without a label are all zero, so they add nothing
    // to the sum, and the mean is over labelled rows only (not diluted by them).
    return tf.tidy(() => {
      const p = tf.clipByValue(yPred, 1e-7, 1 - 1e-7);
      const perRow = tf.neg(tf.sum(tf.mul(yTrue, tf.log(p)), -1));
      return maskedMean(tf, perRow, mask ?? tf.sum(yTrue, -1));
    });
  },
  distill(tf, yTrue, yPred, temperature) {
    // Both distributions softened at the temperature (Li & Hoiem use 2), then cross-entropy.
    return tf.tidy(() => {
      const soften = (p: Tensor) => tf.softmax(tf.div(tf.log(tf.clipByValue(p, 1e-7, 1)), temperature));
      return tf.mean(tf.neg(tf.sum(tf.mul(soften(yTrue), tf.log(tf.clipByValue(soften(yPred), 1e-7, 1))), -1)));
    });
  },
  format(outputs, head, topK) {
    const labels = labelsOf(head);
    const ranked = Array.from(outputs, (score, i) => ({ label: labels[i], score })).sort((a, b) => b.score - a.score);
    return { label: ranked[0].label, score: ranked[0].score, scores: ranked.slice(0, Math.max(1, topK)) };
  },
};

/** Independent sigmoid per label; a record's label is the set of classes it has (possibly empty). */
export const multilabelKind: TaskKind = {
  outputUnits: (head) => labelsOf(head, 1).length,
  activation: 'sigmoid',
  encodeLabels(values, head) {
    const labels = labelsOf(head, 1);
    const k = labels.length;
    const index = new Map(labels.map((l, i) => [l, i]));
    const y = new Float32Array(values.length * k);
    values.forEach((v, r) => {
      if (v === null || v === undefined) {
        y.fill(Number.NaN, r * k, (r + 1) * k);
        return;
      }
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
        throw new LabelError(`task "${head.name}" is a multilabel task; got the label ${JSON.stringify(v)}`);
      }
      for (const c of v) {
        const i = index.get(c);
        if (i === undefined) throw new LabelError(`task "${head.name}" has no class "${c}"`);
        y[r * k + i] = 1;
      }
    });
    return y;
  },
  targetMatrix: (targets) => Float32Array.from(targets, (v) => (Number.isNaN(v) ? 0 : v)),
  hasLabel(targets, i, count) {
    if (count === undefined) throw new RangeError('multilabel targets need the record count');
    return isLabelled(targets, count, i);
  },
  loss(tf, yTrue, yPred, mask) {
    // Binary cross-entropy averaged over the labels of a row, then the masked mean over rows.
    return tf.tidy(() => {
      const p = tf.clipByValue(yPred, 1e-7, 1 - 1e-7);
      const bce = tf.neg(tf.add(tf.mul(yTrue, tf.log(p)), tf.mul(tf.sub(1, yTrue), tf.log(tf.sub(1, p)))));
      const perRow = tf.mean(bce, -1);
      return maskedMean(tf, perRow, mask ?? tf.onesLike(perRow));
    });
  },
  distill(tf, yTrue, yPred) {
    // Independent per-label probabilities: binary cross-entropy against the old ones.
    return multilabelKind.loss(tf, yTrue, yPred);
  },
  format(outputs, head, topK) {
    const labels = labelsOf(head, 1);
    const thresholds = head.thresholds ?? labels.map(() => 0.5);
    const chosen = labels.filter((_, i) => outputs[i] >= thresholds[i]);
    const ranked = Array.from(outputs, (score, i) => ({ label: labels[i], score })).sort((a, b) => b.score - a.score);
    return { labels: chosen, scores: ranked.slice(0, Math.max(1, topK, chosen.length)) };
  },
};

/** Output length of a regression head. */
export const regressionSize = (head: TaskHead): number => {
  const size = head.size ?? head.mean?.length ?? 1;
  if (!(Number.isInteger(size) && size >= 1)) throw new LabelError(`regression task "${head.name}" has no valid size`);
  return size;
};

/**
 * Mean and standard deviation per output of the labelled rows: what a regression
 * head is standardised with. A constant output gets std 1 (no scaling, no 0/0).
 */
export function regressionStats(targets: Float32Array, count: number): { mean: number[]; std: number[] } {
  const w = targetWidth(targets, count);
  const mean = new Array<number>(w).fill(0);
  const sq = new Array<number>(w).fill(0);
  let n = 0;
  for (let i = 0; i < count; i++) {
    if (!isLabelled(targets, count, i)) continue;
    n++;
    for (let j = 0; j < w; j++) mean[j] += targets[i * w + j];
  }
  if (n === 0) return { mean: mean, std: mean.map(() => 1) };
  for (let j = 0; j < w; j++) mean[j] /= n;
  for (let i = 0; i < count; i++) {
    if (!isLabelled(targets, count, i)) continue;
    for (let j = 0; j < w; j++) sq[j] += (targets[i * w + j] - mean[j]) ** 2;
  }
  const std = sq.map((s) => Math.sqrt(s / n)).map((s) => (s > 1e-12 ? s : 1));
  return { mean, std };
}

/** A number or a fixed-length vector; trained standardised, predicted in real units. */
export const regressionKind: TaskKind = {
  outputUnits: regressionSize,
  activation: 'linear',
  encodeLabels(values, head) {
    const size = regressionSize(head);
    const y = new Float32Array(values.length * size);
    values.forEach((v, r) => {
      if (v === null || v === undefined) {
        y.fill(Number.NaN, r * size, (r + 1) * size);
        return;
      }
      const vector = typeof v === 'number' ? [v] : Array.isArray(v) && v.every((x) => typeof x === 'number') ? v : undefined;
      if (!vector) throw new LabelError(`task "${head.name}" is a regression task; got the label ${JSON.stringify(v)}`);
      if (vector.length !== size) throw new LabelError(`task "${head.name}" needs ${size} value${size === 1 ? '' : 's'} per label, got ${vector.length}`);
      y.set(vector, r * size);
    });
    return y;
  },
  targetMatrix(targets, units, head) {
    const mean = head?.mean ?? new Array<number>(units).fill(0);
    const std = head?.std ?? new Array<number>(units).fill(1);
    return Float32Array.from(targets, (v, i) => (Number.isNaN(v) ? 0 : (v - mean[i % units]) / std[i % units]));
  },
  hasLabel(targets, i, count) {
    if (count === undefined) throw new RangeError('regression targets need the record count');
    return isLabelled(targets, count, i);
  },
  loss(tf, yTrue, yPred, mask) {
    // Mean squared error over the (standardised) outputs of a row, then the masked mean over rows.
    return tf.tidy(() => {
      const perRow = tf.mean(tf.squaredDifference(yTrue, yPred), -1);
      return maskedMean(tf, perRow, mask ?? tf.onesLike(perRow));
    });
  },
  distill(tf, yTrue, yPred) {
    // Values: squared error against the old (standardised) outputs.
    return regressionKind.loss(tf, yTrue, yPred);
  },
  format(outputs, head) {
    const size = regressionSize(head);
    return { value: Array.from(outputs.subarray(0, size), (v, i) => v * (head.std?.[i] ?? 1) + (head.mean?.[i] ?? 0)) };
  },
};

export const TASK_KINDS: Record<TaskType, TaskKind> = {
  classification: classificationKind,
  multilabel: multilabelKind,
  regression: regressionKind,
};

export const taskKind = (type: TaskType): TaskKind => {
  const kind = TASK_KINDS[type];
  if (!kind) throw new UnsupportedTaskTypeError(`unknown task type "${type}"; use classification, multilabel or regression`);
  return kind;
};
