/**
 * What differs between task types (classification, multilabel, regression): the
 * output layer, how labels become targets, the (masked) loss, and how outputs
 * become a prediction. One small strategy per type in a registry keyed by the
 * spec's `TaskTypeSchema`; only classification exists yet, the others fail with a
 * readable error until they are built.
 */
import type { Tensor } from '@tensorflow/tfjs';
import type { LabelValue } from '../schemas/manifest.js';
import type { TaskHead } from '../schemas/model.js';
import type { TaskPrediction } from '../schemas/predict.js';
import type { Tf } from '../tf/loader.js';

export type TaskType = TaskHead['type'];

/**
 * Targets of one task for a set of records. Classification: the class index per
 * record, -1 where the record has no label for the task (the loss skips it).
 */
export type TaskTargets = Int32Array;

export interface TaskKind {
  /** Units of the task's output layer. */
  outputUnits(head: TaskHead): number;
  activation: 'softmax' | 'sigmoid' | 'linear';
  /** Turns per-record label values (null/undefined = missing) into targets; throws on an unknown value. */
  encodeLabels(values: Array<LabelValue | null | undefined>, head: TaskHead): TaskTargets;
  /** count×units target matrix the loss reads (missing records: an all-zero row). */
  targetMatrix(targets: TaskTargets, units: number): Float32Array;
  /** Whether a record has a label (the mask of the loss and the metrics). */
  hasLabel(targets: TaskTargets, i: number): boolean;
  /** Loss on a batch, averaged over the labelled records only. */
  loss(tf: Tf, yTrue: Tensor, yPred: Tensor): Tensor;
  /** One record's outputs as the predict API returns them. */
  format(outputs: Float32Array, head: TaskHead, topK: number): TaskPrediction;
}

export class UnsupportedTaskTypeError extends Error {
  override name = 'UnsupportedTaskTypeError';
}

export class LabelError extends Error {
  override name = 'LabelError';
}

const labelsOf = (head: TaskHead): string[] => {
  if (!head.labels || head.labels.length < 2) throw new LabelError(`task "${head.name}" needs at least 2 classes, has ${head.labels?.length ?? 0}`);
  return head.labels;
};

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
  loss(tf, yTrue, yPred) {
    // Masked cross-entropy: rows without a label are all zero, so they add nothing
    // to the sum, and the mean is over labelled rows only (not diluted by them).
    return tf.tidy(() => {
      const p = tf.clipByValue(yPred, 1e-7, 1 - 1e-7);
      const perRow = tf.neg(tf.sum(tf.mul(yTrue, tf.log(p)), -1));
      const labelled = tf.sum(yTrue);
      return tf.div(tf.sum(perRow), tf.maximum(labelled, 1));
    });
  },
  format(outputs, head, topK) {
    const labels = labelsOf(head);
    const ranked = Array.from(outputs, (score, i) => ({ label: labels[i], score })).sort((a, b) => b.score - a.score);
    return { label: ranked[0].label, score: ranked[0].score, scores: ranked.slice(0, Math.max(1, topK)) };
  },
};

const notYet = (type: TaskType): TaskKind => {
  const fail = (): never => {
    throw new UnsupportedTaskTypeError(`task type "${type}" is not supported yet; use "classification"`);
  };
  return { outputUnits: fail, activation: 'linear', encodeLabels: fail, targetMatrix: fail, hasLabel: fail, loss: fail, format: fail };
};

export const TASK_KINDS: Record<TaskType, TaskKind> = {
  classification: classificationKind,
  multilabel: notYet('multilabel'),
  regression: notYet('regression'),
};

export const taskKind = (type: TaskType): TaskKind => TASK_KINDS[type];
