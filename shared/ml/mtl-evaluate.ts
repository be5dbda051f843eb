/**
 * Multi-task evaluation: metrics per task type on one forward pass, multilabel
 * thresholds tuned on the validation split, regression statistics for the heads,
 * and the "does sharing help?" comparison against a single-task model per main task.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { TaskHead } from '../schemas/model.js';
import type { Sharing } from '../schemas/spec.js';
import { loadTf } from '../tf/loader.js';
import { buildHeadModel } from './architectures.js';
import {
  classificationMetrics,
  multilabelMetrics,
  regressionMetrics,
  type ClassificationMetrics,
  type MultilabelMetrics,
  type RegressionMetrics,
} from './metrics.js';
import { isLabelled, regressionSize, regressionStats, taskKind } from './task-kinds.js';
import type { Split } from './split.js';
import { trainModel, type TrainData, type TrainOptions } from './train.js';

export type TaskMetrics =
  ({ type: 'classification' } & ClassificationMetrics) | ({ type: 'multilabel' } & MultilabelMetrics) | ({ type: 'regression' } & RegressionMetrics);

/** Raw outputs of every head on a split, one forward pass, in head order. */
async function outputsOf(model: LayersModel, split: Split): Promise<Float32Array[]> {
  const { tf } = await loadTf();
  const size = model.inputs[0].shape[1] as number;
  const x = tf.tensor2d(split.x, [split.count, size]);
  const out = model.predict(x);
  const outs = Array.isArray(out) ? out : [out];
  try {
    return await Promise.all(outs.map(async (o) => (await o.data()) as Float32Array));
  } finally {
    x.dispose();
    outs.forEach((o) => o.dispose());
  }
}

/** Metrics of one task from its raw outputs, over the records that carry its label; undefined when none does. */
export function taskMetrics(head: TaskHead, outputs: Float32Array, split: Split): TaskMetrics | undefined {
  const targets = split.targets[head.name];
  const units = taskKind(head.type).outputUnits(head);
  const rows: number[] = [];
  for (let i = 0; i < split.count; i++) if (isLabelled(targets, split.count, i)) rows.push(i);
  if (rows.length === 0) return undefined;
  if (head.type === 'classification') {
    const predicted = rows.map((i) => {
      let best = 0;
      for (let j = 1; j < units; j++) if (outputs[i * units + j] > outputs[i * units + best]) best = j;
      return best;
    });
    return {
      type: 'classification',
      ...classificationMetrics(
        rows.map((i) => targets[i]),
        predicted,
        head.labels!,
      ),
    };
  }
  if (head.type === 'multilabel') {
    const thresholds = head.thresholds ?? head.labels!.map(() => 0.5);
    const truth = rows.flatMap((i) => Array.from(targets.subarray(i * units, (i + 1) * units)));
    const predicted = rows.flatMap((i) => Array.from(outputs.subarray(i * units, (i + 1) * units), (s, j) => (s >= thresholds[j] ? 1 : 0)));
    return { type: 'multilabel', ...multilabelMetrics(truth, predicted, head.labels!) };
  }
  const size = regressionSize(head);
  const truth = rows.flatMap((i) => Array.from(targets.subarray(i * size, (i + 1) * size)));
  const predicted = rows.flatMap((i) => Array.from(outputs.subarray(i * size, (i + 1) * size), (v, j) => v * (head.std?.[j] ?? 1) + (head.mean?.[j] ?? 0)));
  return { type: 'regression', ...regressionMetrics(truth, predicted, size) };
}

/**
 * Test metrics of every task from one forward pass: classification as accuracy,
 * macro F1, per class and confusion matrix; multilabel per-label and micro/macro F1;
 * regression MAE, RMSE and R² in real units.
 */
export async function evaluateTasks(model: LayersModel, heads: TaskHead[], split: Split): Promise<Record<string, TaskMetrics | undefined>> {
  if (split.count === 0) return Object.fromEntries(heads.map((h) => [h.name, undefined]));
  const outs = await outputsOf(model, split);
  return Object.fromEntries(heads.map((h, i) => [h.name, taskMetrics(h, outs[i], split)]));
}

/** The one figure a task is compared by, and which way is better. */
export function headlineMetric(m: TaskMetrics): { metric: string; value: number; higherIsBetter: boolean } {
  if (m.type === 'classification') return { metric: 'accuracy', value: m.accuracy, higherIsBetter: true };
  if (m.type === 'multilabel') return { metric: 'microF1', value: m.microF1, higherIsBetter: true };
  return { metric: 'rmse', value: m.rmse, higherIsBetter: false };
}

/** The few numbers of a task's test metrics kept in the model metadata (the report has everything). */
export function summaryMetrics(m: TaskMetrics | undefined): Record<string, number> {
  if (!m) return { count: 0 };
  if (m.type === 'classification') return { accuracy: m.accuracy, macroF1: m.macroF1, count: m.count };
  if (m.type === 'multilabel') return { microF1: m.microF1, macroF1: m.macroF1, subsetAccuracy: m.subsetAccuracy, count: m.count };
  // The status' metrics are numbers only: an R² that cannot be computed is left out there (the report has null).
  return { mae: m.mae, rmse: m.rmse, ...(m.r2 === null ? {} : { r2: m.r2 }), count: m.count };
}

/**
 * Heads with what the train split fixes before training: each regression head's
 * size, mean and std (its targets are standardised with them).
 */
export function withTargetStatistics(heads: TaskHead[], train: Split): TaskHead[] {
  return heads.map((h) => {
    if (h.type !== 'regression') return h;
    const targets = train.targets[h.name];
    if (targets instanceof Int32Array) throw new Error(`regression task "${h.name}" has class targets`);
    const { mean, std } = regressionStats(targets, train.count);
    return { ...h, size: mean.length, mean, std };
  });
}

/** Candidate thresholds: a grid fine enough for small validation splits. */
const THRESHOLDS = Array.from({ length: 19 }, (_, i) => (i + 1) / 20);

/**
 * Per-label thresholds of every multilabel head, each the one of 0.05…0.95 that
 * gives that label the best F1 on the split (ties: nearest 0.5). A label without
 * positives in the split keeps 0.5: there is nothing to tune it on.
 */
export async function tuneThresholds(model: LayersModel, heads: TaskHead[], split: Split | undefined): Promise<TaskHead[]> {
  if (!heads.some((h) => h.type === 'multilabel')) return heads;
  const outs = split && split.count > 0 ? await outputsOf(model, split) : undefined;
  return heads.map((h, t) => {
    if (h.type !== 'multilabel') return h;
    const k = h.labels!.length;
    if (!outs || !split) return { ...h, thresholds: h.labels!.map(() => 0.5) };
    const targets = split.targets[h.name];
    const rows = Array.from({ length: split.count }, (_, i) => i).filter((i) => isLabelled(targets, split.count, i));
    const thresholds = h.labels!.map((_, j) => {
      const truth = rows.map((i) => targets[i * k + j] >= 0.5);
      if (!truth.some(Boolean)) return 0.5;
      let best = 0.5;
      let bestF1 = -1;
      for (const th of THRESHOLDS) {
        let tp = 0;
        let fp = 0;
        let fn = 0;
        rows.forEach((i, n) => {
          const p = outs[t][i * k + j] >= th;
          if (p && truth[n]) tp++;
          else if (p) fp++;
          else if (truth[n]) fn++;
        });
        const f1 = (2 * tp) / Math.max(1, 2 * tp + fp + fn);
        if (f1 > bestF1 + 1e-12 || (Math.abs(f1 - bestF1) <= 1e-12 && Math.abs(th - 0.5) < Math.abs(best - 0.5))) {
          bestF1 = f1;
          best = th;
        }
      }
      return best;
    });
    return { ...h, thresholds };
  });
}

export interface SharingComparison {
  /** accuracy (classification), microF1 (multilabel) or rmse (regression). */
  metric: string;
  higherIsBetter: boolean;
  withSharing: number | null;
  withoutSharing: number | null;
  /** withSharing − withoutSharing; null when a side has no test records. */
  difference: number | null;
  /** Which did better on the test split. */
  better: 'sharing' | 'single-task' | 'tie' | null;
}

export interface SingleTaskComparisonOptions {
  embeddingSize: number;
  /** Every task of the multi-task model (auxiliary ones are not compared). */
  heads: TaskHead[];
  sharing: Sharing;
  data: TrainData;
  test: Split;
  /** Test metrics of the multi-task model. */
  shared: Record<string, TaskMetrics | undefined>;
  /**
   * Training options of the multi-task run; each single-task model trains the same way,
   * `selectOnValidation` included (else one side early-stops on a split too small to choose by).
   */
  training: Pick<TrainOptions, 'epochs' | 'batchSize' | 'learningRate' | 'patience' | 'seed' | 'selectOnValidation'>;
  /** @default 0.2 */
  dropout?: number;
  /** @default 42 */
  seed?: number;
  /** After each single-task model, with its task name. */
  onTask?: (task: string, index: number, total: number) => void | Promise<void>;
  /** Trains each single-task model; the job passes the trainer of its multi-task model. @default trainModel */
  trainer?: typeof trainModel;
}

/** The single-task architecture matching a multi-task one: the same hidden sizes, one task. */
export function singleTaskSharing(sharing: Sharing): Sharing {
  return sharing.method === 'hard' ? sharing : { method: 'hard', trunk: sharing.tower };
}

/**
 * "Does sharing help?": trains, on the same embeddings and splits, one single-task
 * model per main task (the same hidden layer sizes, only that task's labels) and
 * compares its test metric with the multi-task model's.
 */
export async function compareWithSingleTask(opts: SingleTaskComparisonOptions): Promise<Record<string, SharingComparison>> {
  const main = opts.heads.filter((h) => !h.auxiliary);
  const out: Record<string, SharingComparison> = {};
  for (const [index, head] of main.entries()) {
    const model = await buildHeadModel({
      embeddingSize: opts.embeddingSize,
      tasks: [head],
      sharing: singleTaskSharing(opts.sharing),
      dropout: opts.dropout,
      seed: opts.seed,
    });
    let single: TaskMetrics | undefined;
    try {
      const only = (s: Split): Split => ({ x: s.x, count: s.count, targets: { [head.name]: s.targets[head.name] } });
      await (opts.trainer ?? trainModel)(
        model,
        { train: only(opts.data.train), validation: opts.data.validation && only(opts.data.validation) },
        { ...opts.training, tasks: [head] },
      );
      const tuned = await tuneThresholds(model, [head], opts.data.validation && only(opts.data.validation));
      single = (await evaluateTasks(model, tuned, only(opts.test)))[head.name];
    } finally {
      model.dispose();
    }
    const shared = opts.shared[head.name];
    const ref = shared ?? single;
    const h = ref ? headlineMetric(ref) : { metric: 'accuracy', higherIsBetter: true };
    const withSharing = shared ? headlineMetric(shared).value : null;
    const withoutSharing = single ? headlineMetric(single).value : null;
    const difference = withSharing !== null && withoutSharing !== null ? withSharing - withoutSharing : null;
    out[head.name] = {
      metric: h.metric,
      higherIsBetter: h.higherIsBetter,
      withSharing,
      withoutSharing,
      difference,
      better: difference === null ? null : Math.abs(difference) < 1e-9 ? 'tie' : difference > 0 === h.higherIsBetter ? 'sharing' : 'single-task',
    };
    await opts.onTask?.(head.name, index, main.length);
  }
  return out;
}
