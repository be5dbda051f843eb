/**
 * Trains a head model on cached embeddings: one epoch per `fit` call, so early
 * stopping can restore the best weights and a caller can checkpoint between epochs.
 */
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { loadTf } from '../tf/loader.js';
import { outputTaskNames } from './heads.js';
import { taskKind, type TaskTargets, type TaskType } from './task-kinds.js';

export interface HeadSplit {
  /** count×embeddingSize embeddings. */
  x: Float32Array;
  count: number;
  /** Per task name: targets of every record (see TaskTargets; -1 = no label). */
  targets: Record<string, TaskTargets>;
}

export interface HeadData {
  train: HeadSplit;
  /** Drives early stopping; without it, the training loss does. */
  validation?: HeadSplit;
}

/** Figures of one epoch: loss, val_loss, val_acc (mean over tasks) and val_acc_<task>. */
export type EpochLogs = Record<string, number>;

export interface TrainState {
  /** Next epoch to run (0-based). */
  nextEpoch: number;
  /** Best monitored value so far (val_loss, or loss without validation). */
  best: number;
  bestEpoch: number;
  /** Epochs since the best one. */
  wait: number;
  history: EpochLogs[];
}

/** What a caller needs to resume training: the state and the best weights so far (the current ones are in the model). */
export interface TrainCheckpoint {
  state: TrainState;
  /** In model.getWeights() order; undefined before the first epoch. */
  bestWeights?: Tensor[];
}

export interface TrainHeadsOptions {
  /** @default 30 */
  epochs?: number;
  /** @default 32 */
  batchSize?: number;
  /** Adam's learning rate. @default 0.001 */
  learningRate?: number;
  /** Epochs without improvement of the monitored loss before stopping. @default 5 */
  patience?: number;
  /** Improvement smaller than this does not count. @default 0 */
  minDelta?: number;
  /** Type of each output's task. @default classification for every output */
  taskTypes?: Record<string, TaskType>;
  /** Multiplier of each task's loss (see loss-weighting.ts). @default 1 each */
  lossWeights?: Record<string, number>;
  /**
   * Called after each epoch, awaited before the next. The checkpoint's tensors
   * belong to the trainer: read or save them, do not dispose them.
   */
  onEpoch?: (epoch: number, logs: EpochLogs, checkpoint: TrainCheckpoint) => void | Promise<void>;
  /** Continue from a checkpoint; the trainer takes ownership of its tensors. */
  resume?: TrainCheckpoint;
}

export interface TrainResult {
  history: EpochLogs[];
  /** Epoch whose weights the model holds at the end. */
  bestEpoch: number;
  epochsRun: number;
  stoppedEarly: boolean;
}

export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError';
}

/**
 * Compiles and fits `model` on embeddings with early stopping on the validation
 * loss; at the end the model holds the weights of the best epoch. Each call uses
 * (and frees) a fresh Adam optimizer, so call it again to train further.
 */
export async function trainHeads(model: LayersModel, data: HeadData, opts: TrainHeadsOptions = {}): Promise<TrainResult> {
  const { tf } = await loadTf();
  const epochs = opts.epochs ?? 30;
  const batchSize = opts.batchSize ?? 32;
  const patience = opts.patience ?? 5;
  const minDelta = opts.minDelta ?? 0;
  const tasks = outputTaskNames(model).map((name, i) => {
    const units = model.outputs[i].shape[model.outputs[i].shape.length - 1] as number;
    return { name, units, kind: taskKind(opts.taskTypes?.[name] ?? 'classification'), weight: opts.lossWeights?.[name] ?? 1 };
  });
  for (const split of [data.train, data.validation]) {
    if (!split) continue;
    for (const t of tasks) if (!split.targets[t.name]) throw new Error(`no targets for task "${t.name}"`);
  }

  // The optimizer's slots (Adam's moments) are tensors too: owned and freed here,
  // so the model leaves trainHeads holding only its weights.
  const optimizer = tf.train.adam(opts.learningRate ?? 0.001);
  model.compile({
    optimizer,
    loss: tasks.map((t) => (yTrue: Tensor, yPred: Tensor) => tf.tidy(() => tf.mul(t.kind.loss(tf, yTrue, yPred), t.weight))),
  });

  const size = model.inputs[0].shape[1] as number;
  const tensorsOf = (split: HeadSplit) => ({
    x: tf.tensor2d(split.x, [split.count, size]),
    ys: tasks.map((t) => tf.tensor2d(t.kind.targetMatrix(split.targets[t.name], t.units), [split.count, t.units])),
  });
  const train = tensorsOf(data.train);
  const validation = data.validation && data.validation.count > 0 ? tensorsOf(data.validation) : undefined;

  const state: TrainState = opts.resume
    ? { ...opts.resume.state, history: [...opts.resume.state.history] }
    : { nextEpoch: 0, best: Infinity, bestEpoch: -1, wait: 0, history: [] };
  let bestWeights: Tensor[] | undefined = opts.resume?.bestWeights;
  let stoppedEarly = false;

  try {
    while (state.nextEpoch < epochs && !(state.wait >= patience && state.bestEpoch >= 0)) {
      const epoch = state.nextEpoch;
      const h = await model.fit(train.x, train.ys, {
        epochs: 1,
        batchSize,
        shuffle: true,
        verbose: 0,
        validationData: validation ? [validation.x, validation.ys] : undefined,
      });
      const logs: EpochLogs = { loss: h.history.loss[0] as number };
      if (validation) {
        logs.val_loss = h.history.val_loss[0] as number;
        Object.assign(logs, await validationAccuracy(model, validation.x, data.validation!, tasks));
      }
      if (!Number.isFinite(logs.loss)) throw new TrainingDivergedError(`training diverged at epoch ${epoch + 1} (loss ${logs.loss}); try a lower learningRate`);
      const monitored = logs.val_loss ?? logs.loss;
      if (monitored < state.best - minDelta) {
        state.best = monitored;
        state.bestEpoch = epoch;
        state.wait = 0;
        bestWeights?.forEach((w) => w.dispose());
        bestWeights = model.getWeights().map((w) => w.clone());
      } else {
        state.wait += 1;
      }
      state.history.push(logs);
      state.nextEpoch = epoch + 1;
      await opts.onEpoch?.(epoch, logs, { state: { ...state, history: [...state.history] }, bestWeights });
    }
    stoppedEarly = state.nextEpoch < epochs;
    if (bestWeights) model.setWeights(bestWeights);
  } finally {
    bestWeights?.forEach((w) => w.dispose());
    optimizer.dispose();
    train.x.dispose();
    train.ys.forEach((y) => y.dispose());
    validation?.x.dispose();
    validation?.ys.forEach((y) => y.dispose());
  }
  return { history: state.history, bestEpoch: state.bestEpoch, epochsRun: state.history.length, stoppedEarly };
}

/** Accuracy per task on the records that have its label, and their mean as val_acc. */
async function validationAccuracy(model: LayersModel, x: Tensor, split: HeadSplit, tasks: Array<{ name: string; units: number }>): Promise<EpochLogs> {
  const out = model.predict(x);
  const outs = Array.isArray(out) ? out : [out as Tensor];
  const logs: EpochLogs = {};
  const accs: number[] = [];
  try {
    for (let t = 0; t < tasks.length; t++) {
      const targets = split.targets[tasks[t].name];
      const argmax = outs[t].argMax(-1);
      const pred = (await argmax.data()) as Int32Array;
      argmax.dispose();
      let n = 0;
      let correct = 0;
      for (let i = 0; i < split.count; i++) {
        if (targets[i] < 0) continue;
        n++;
        if (pred[i] === targets[i]) correct++;
      }
      if (n > 0) {
        logs[`val_acc_${tasks[t].name}`] = correct / n;
        accs.push(correct / n);
      }
    }
  } finally {
    outs.forEach((o) => o.dispose());
  }
  if (accs.length) logs.val_acc = accs.reduce((a, b) => a + b, 0) / accs.length;
  return logs;
}
