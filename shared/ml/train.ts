/**
 * The one training loop of the platform: heads on cached embeddings, the top of a
 * base being fine-tuned, and an extended model in continual learning all train
 * here. It is its own loop (not `fit`) because a multi-task objective needs what
 * `fit` cannot give: per-task losses masked where a record lacks the task's label,
 * a loss weighting that may learn or change per epoch, the soft-sharing penalty on
 * the weights themselves, and soft targets for tasks distilled from an earlier
 * model. One epoch at a time, so early stopping can restore the best weights and a
 * caller can checkpoint between epochs.
 */
import { mulberry32, shuffledIndices } from '../random.js';
import type { LayersModel, Scalar, Tensor, Variable } from '@tensorflow/tfjs';
import type { TaskHead } from '../schemas/model.js';
import type { LossWeighting, Sharing } from '../schemas/spec.js';
import { loadTf, type Tf } from '../tf/loader.js';
import { outputTaskNames, sharingPenalty } from './architectures.js';
import type { z } from 'zod';
import type { TrainStateSchema } from '../schemas/checkpoint.js';
import { createLossCombiner, UnsupportedLossWeightingError, type LossCombiner, type SharedGradients } from './loss-weighting.js';
import type { Split } from './split.js';
import { labelMask, taskKind, type TaskKind, type TaskType } from './task-kinds.js';
import { UserError } from '../errors.js';

export interface TrainData {
  train: Split;
  /** Drives early stopping; without it, the training loss does. */
  validation?: Split;
}
/**
 * Figures of one epoch: loss (the whole objective), loss_<task>, acc and acc_<task>
 * (training accuracy over the epoch's batches as they were trained, as Keras reports
 * it: free, since the batches' outputs are there), penalty (soft sharing), weight_<task>, val_loss (Σ static weight × task loss, comparable across
 * epochs whatever the weighting), val_loss_<task>, val_acc (mean over the
 * classification tasks) and val_acc_<task>.
 */
export type EpochLogs = Record<string, number>;

/** The trainer's state between epochs (schema in shared/schemas/checkpoint.ts, as a checkpoint stores it). */
export type TrainState = z.output<typeof TrainStateSchema>;

/** What a caller needs to resume training: the state and the best weights so far (the current ones are in the model). */
export interface TrainCheckpoint {
  state: TrainState;
  /** In model.getWeights() order; undefined before the first epoch. */
  bestWeights?: Tensor[];
}

/** Where a training stage keeps its checkpoint: loaded into the model before the first epoch, saved after each. */
export interface StageCheckpoint {
  load(model: LayersModel): Promise<TrainCheckpoint | undefined>;
  save(model: LayersModel, cp: TrainCheckpoint): Promise<void>;
}

export interface TrainOptions {
  /** @default 30 */
  epochs?: number;
  /** @default 32 */
  batchSize?: number;
  /** Adam's learning rate. @default 0.001 */
  learningRate?: number;
  /** Epochs without improvement of the monitored loss before stopping. @default 5 */
  patience?: number;
  /**
   * Whether early stopping and the restored epoch follow the validation loss. With
   * false the validation split is still evaluated and logged, but epochs are chosen
   * by the training loss (for validation splits too small to choose by).
   * @default true
   */
  selectOnValidation?: boolean;
  /** Improvement smaller than this does not count. @default 0 */
  minDelta?: number;
  /** Type of each output's task. @default classification for every output (or the types of `tasks`) */
  taskTypes?: Record<string, TaskType>;
  /**
   * The model's tasks as stored in its metadata; regression heads carry the mean
   * and std their targets are standardised with. @default built from `taskTypes`
   */
  tasks?: TaskHead[];
  /** Static multiplier of each task's loss (the spec's `weight`). @default 1 each */
  lossWeights?: Record<string, number>;
  /** How task losses combine (see loss-weighting.ts). @default {"method": "static"} */
  lossWeighting?: LossWeighting;
  /** The model's architecture; soft sharing adds its penalty to the loss. @default hard (no penalty) */
  sharing?: Sharing;
  /** Seed of the batch shuffling. @default 42 */
  seed?: number;
  /**
   * Run the layers as at inference while training (batch norm on its moving
   * statistics and left alone, dropout off): what fine-tuning a few top layers of
   * a base, or an extended model, wants. @default false (training mode)
   */
  inferenceMode?: boolean;
  /** Temperature of the distillation loss on soft targets (Li & Hoiem 2016 use 2). @default 2 */
  temperature?: number;
  /** Advice appended to the divergence error. @default "try a lower learningRate" */
  divergenceHint?: string;
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
  /** The weight each task's loss ended with. */
  taskWeights: Record<string, number>;
}

export class TrainingDivergedError extends UserError {
  override name = 'TrainingDivergedError';
  constructor(message: string) {
    super('TRAINING_DIVERGED', message);
  }
}

/** The model given to train has nothing that trains, or an output no task is known for. */
export class NothingToTrainError extends UserError {
  override name = 'NothingToTrainError';
  constructor(message: string) {
    super('INVALID_SPEC', message);
  }
}

interface TrainTask {
  name: string;
  units: number;
  kind: TaskKind;
  head: TaskHead;
  weight: number;
}

interface SplitTensors {
  x: Tensor;
  ys: Tensor[];
  masks: Tensor[];
  /** Per task: whether it learns soft targets (distillation) on this split. */
  soft: boolean[];
  count: number;
}

/** Tensors of a split; on a failure half way, frees what it made before rethrowing. */
function splitTensors(tf: Tf, split: Split, tasks: TrainTask[], size: number): SplitTensors {
  const made: Tensor[] = [];
  const keep = <T extends Tensor>(t: T): T => {
    made.push(t);
    return t;
  };
  try {
    const soft = tasks.map((t) => Boolean(split.soft?.[t.name]));
    return {
      x: keep(tf.tensor2d(split.x, [split.count, size])),
      ys: tasks.map((t, i) =>
        keep(tf.tensor2d(soft[i] ? split.soft![t.name] : t.kind.targetMatrix(split.targets[t.name], t.units, t.head), [split.count, t.units])),
      ),
      // Soft targets exist for every row: each row counts.
      masks: tasks.map((t, i) => keep(tf.tensor1d(soft[i] ? new Float32Array(split.count).fill(1) : labelMask(split.targets[t.name], split.count)))),
      soft,
      count: split.count,
    };
  } catch (err) {
    made.forEach((t) => t.dispose());
    throw err;
  }
}

const disposeSplit = (s?: SplitTensors) => {
  s?.x.dispose();
  s?.ys.forEach((y) => y.dispose());
  s?.masks.forEach((m) => m.dispose());
};

const asList = (out: Tensor | Tensor[]) => (Array.isArray(out) ? out : [out]);

function resolveTasks(model: LayersModel, opts: Pick<TrainOptions, 'tasks' | 'taskTypes' | 'lossWeights'>): TrainTask[] {
  const byName = new Map((opts.tasks ?? []).map((h) => [h.name, h]));
  return outputTaskNames(model).map((name, i) => {
    const units = model.outputs[i].shape[model.outputs[i].shape.length - 1] as number;
    const head = byName.get(name) ?? (opts.tasks ? undefined : { name, type: opts.taskTypes?.[name] ?? 'classification', auxiliary: false });
    if (!head) throw new NothingToTrainError(`no task head for output "${name}"`);
    return { name, units, head, kind: taskKind(head.type), weight: opts.lossWeights?.[name] ?? 1 };
  });
}

function checkTargets(split: Split, tasks: TrainTask[]): void {
  for (const t of tasks) {
    const soft = split.soft?.[t.name];
    if (soft && soft.length !== split.count * t.units)
      throw new Error(`task "${t.name}" has ${soft.length} soft target values for ${split.count} records of ${t.units}`);
    if (soft) continue;
    const targets = split.targets[t.name];
    if (!targets) throw new Error(`no targets for task "${t.name}"`);
    const width = targets instanceof Int32Array ? 1 : t.units;
    if (targets.length !== split.count * width) throw new Error(`task "${t.name}" has ${targets.length} target values for ${split.count} records of ${width}`);
  }
}

interface BatchLosses {
  /** Each task's masked mean loss. */
  losses: Record<string, Scalar>;
  /** Each task's labelled records among the rows. */
  counts: Record<string, Scalar>;
  /** With `accuracy`: per classification task learning hard labels, the labelled rows whose most probable class is the label. */
  correct: Record<string, Scalar>;
}

/**
 * Masked loss and labelled count of each task on the given rows (whole split when
 * `rows` is absent), in training mode (dropout on) or not. A task on soft targets
 * takes its kind's distillation loss instead.
 */
function taskLosses(
  tf: Tf,
  model: LayersModel,
  data: SplitTensors,
  tasks: TrainTask[],
  opts: { rows?: Tensor; training: boolean; temperature: number; accuracy?: boolean },
): BatchLosses {
  const pick = (t: Tensor) => (opts.rows ? tf.gather(t, opts.rows) : t);
  const outs = asList(model.apply(pick(data.x), { training: opts.training }) as Tensor | Tensor[]);
  const losses: Record<string, Scalar> = {};
  const counts: Record<string, Scalar> = {};
  const correct: Record<string, Scalar> = {};
  tasks.forEach((t, i) => {
    const mask = pick(data.masks[i]);
    const yTrue = pick(data.ys[i]);
    losses[t.name] = (data.soft[i] ? t.kind.distill(tf, yTrue, outs[i], opts.temperature) : t.kind.loss(tf, yTrue, outs[i], mask)) as Scalar;
    counts[t.name] = tf.sum(mask);
    // One-hot targets: a row is right when its arg-max is the label's (unlabelled rows are masked out).
    if (opts.accuracy && t.head.type === 'classification' && !data.soft[i])
      correct[t.name] = tf.sum(tf.mul(tf.cast(tf.equal(tf.argMax(outs[i], -1), tf.argMax(yTrue, -1)), 'float32'), mask));
  });
  return { losses, counts, correct };
}

/** What one fit holds: released together in `release`, whatever failed half way. */
interface Fit {
  tf: Tf;
  model: LayersModel;
  tasks: TrainTask[];
  opts: TrainOptions;
  optimizer: ReturnType<Tf['train']['adam']>;
  combiner: LossCombiner;
  variables: Variable[];
  /** The last shared layer's weights, when the weighting learns from their gradients (GradNorm). */
  shared?: Variable[];
  sharing: Sharing;
  train: SplitTensors;
  validation?: SplitTensors;
}

/**
 * The trainable weights of the last layer every output depends on (graph order is
 * topological): GradNorm's W. Undefined when no such layer trains: soft sharing,
 * heads straight on the embedding, or a frozen trunk.
 */
export function lastSharedLayerWeights(model: LayersModel): { layer: string; weights: Variable[] } | undefined {
  const byName = new Map(model.layers.map((l) => [l.name, l]));
  const ancestorsOf = (start: string) => {
    const seen = new Set<string>();
    const stack = [start];
    while (stack.length) {
      const name = stack.pop()!;
      if (seen.has(name)) continue;
      seen.add(name);
      for (const node of byName.get(name)?.inboundNodes ?? []) stack.push(...node.inboundLayers.map((l) => l.name));
    }
    return seen;
  };
  const perOutput = model.outputs.map((o) => ancestorsOf(o.sourceLayer.name));
  const shared = model.layers.filter((l) => l.trainableWeights.length > 0 && perOutput.every((a) => a.has(l.name)));
  const last = shared.at(-1);
  return last && { layer: last.name, weights: last.trainableWeights.map((w) => w.read() as Variable) };
}

/**
 * GradNorm's measurements on one batch, before its step: each task's loss and
 * ‖∇_W L_t‖₂ on the shared weights W, one backward pass per task (to W only).
 * The rows run in the same mode as the step (dropout included).
 */
function sharedGradients(fit: Fit, rows: Tensor): SharedGradients {
  const { tf, model, tasks, opts, train } = fit;
  const out: SharedGradients = { gradNorms: {}, losses: {}, labelled: {} };
  for (const t of tasks) {
    tf.tidy(() => {
      let count = 0;
      const { value, grads } = tf.variableGrads(() => {
        const { losses, counts } = taskLosses(tf, model, train, tasks, { rows, training: !opts.inferenceMode, temperature: opts.temperature ?? 2 });
        count = counts[t.name].dataSync()[0];
        return losses[t.name];
      }, fit.shared);
      const squares = Object.values(grads).map((g) => tf.sum(tf.square(g)));
      out.gradNorms[t.name] = Math.sqrt(squares.length ? tf.addN(squares).dataSync()[0] : 0);
      out.losses[t.name] = value.dataSync()[0];
      out.labelled[t.name] = count > 0;
    });
  }
  return out;
}

/** Runs one epoch of minibatches; returns the mean objective and each task's mean loss over its labelled records. */
function runEpoch(fit: Fit, epoch: number): { loss: number; taskLosses: Record<string, number>; taskAccuracies: Record<string, number> } {
  const { tf, model, tasks, opts, train } = fit;
  const batchSize = opts.batchSize ?? 32;
  // Seeded per epoch, so a resumed run sees the same batches the first run would have.
  const order = shuffledIndices(train.count, mulberry32((opts.seed ?? 42) * 1000 + epoch));
  let lossSum = 0;
  let batches = 0;
  // Per task: Σ batch loss × labelled records, and the labelled records.
  const taskSums = Object.fromEntries(tasks.map((t) => [t.name, 0]));
  const taskCounts = Object.fromEntries(tasks.map((t) => [t.name, 0]));
  const taskCorrect: Record<string, number> = {};
  for (let start = 0; start < train.count; start += batchSize) {
    const rows = tf.tensor1d(order.subarray(start, Math.min(train.count, start + batchSize)), 'int32');
    const perTask: Record<string, Scalar> = {};
    const perCount: Record<string, Scalar> = {};
    const perCorrect: Record<string, Scalar> = {};
    const measured = fit.shared && fit.combiner.afterBatch ? sharedGradients(fit, rows) : undefined;
    const cost = fit.optimizer.minimize(
      () => {
        const { losses, counts, correct } = taskLosses(tf, model, train, tasks, {
          rows,
          training: !opts.inferenceMode,
          temperature: opts.temperature ?? 2,
          accuracy: true,
        });
        for (const [name, l] of Object.entries(losses)) perTask[name] = tf.keep(l);
        for (const [name, c] of Object.entries(counts)) perCount[name] = tf.keep(c);
        for (const [name, c] of Object.entries(correct)) perCorrect[name] = tf.keep(c);
        const objective = fit.combiner.combine(tf, losses, counts);
        const penalty = sharingPenalty(tf, model, fit.sharing);
        return penalty ? tf.add<Scalar>(objective, penalty) : objective;
      },
      true,
      fit.variables,
    );
    rows.dispose();
    if (measured) fit.combiner.afterBatch!(measured);
    lossSum += cost!.dataSync()[0];
    cost!.dispose();
    for (const [name, l] of Object.entries(perTask)) {
      const n = perCount[name].dataSync()[0];
      taskSums[name] += l.dataSync()[0] * n;
      taskCounts[name] += n;
      l.dispose();
      perCount[name].dispose();
    }
    for (const [name, c] of Object.entries(perCorrect)) {
      taskCorrect[name] = (taskCorrect[name] ?? 0) + c.dataSync()[0];
      c.dispose();
    }
    batches++;
  }
  return {
    loss: lossSum / batches,
    taskLosses: Object.fromEntries(tasks.map((t) => [t.name, taskCounts[t.name] > 0 ? taskSums[t.name] / taskCounts[t.name] : 0])),
    taskAccuracies: Object.fromEntries(
      Object.entries(taskCorrect)
        .filter(([name]) => taskCounts[name] > 0)
        .map(([name, c]) => [name, c / taskCounts[name]]),
    ),
  };
}

/** The figures of one finished epoch (see EpochLogs), weighting advanced to the next epoch. */
async function epochLogs(fit: Fit, data: TrainData, epoch: number): Promise<EpochLogs> {
  const { tf, model, tasks } = fit;
  const { loss, taskLosses: epochLosses, taskAccuracies } = runEpoch(fit, epoch);
  const logs: EpochLogs = { loss };
  for (const t of tasks) logs[`loss_${t.name}`] = epochLosses[t.name];
  const accs = Object.entries(taskAccuracies);
  for (const [name, a] of accs) logs[`acc_${name}`] = a;
  if (accs.length) logs.acc = accs.reduce((sum, [, a]) => sum + a, 0) / accs.length;
  const penalty = tf.tidy(() => sharingPenalty(tf, model, fit.sharing));
  if (penalty) {
    logs.penalty = penalty.dataSync()[0];
    penalty.dispose();
  }
  fit.combiner.endEpoch(epochLosses);
  for (const [name, w] of Object.entries(fit.combiner.weights())) logs[`weight_${name}`] = w;
  if (fit.validation) Object.assign(logs, await validationLogs(tf, model, fit.validation, data.validation!, tasks, fit.opts.temperature ?? 2));
  if (!Number.isFinite(logs.loss))
    throw new TrainingDivergedError(`training diverged at epoch ${epoch + 1} (loss ${logs.loss}); ${fit.opts.divergenceHint ?? 'try a lower learningRate'}`);
  return logs;
}

/**
 * Trains `model` with early stopping on the validation loss; at the end the model
 * holds the weights of the best epoch. Each call uses (and frees) a fresh Adam
 * optimizer, so call it again to train further. Heads on embeddings, a fine-tuned
 * top with its heads (`inferenceMode`), and an extended model whose old heads
 * learn soft targets all train here, with the spec's loss weighting.
 *
 * The objective of a batch is the loss weighting's combination of the tasks' masked
 * losses (each the mean over the batch's records that carry the task's label; a task
 * with no label in a batch adds nothing) plus the sharing penalty. A task's epoch loss
 * is the mean over its labelled records, so batches without its labels do not dilute it.
 */
export async function trainModel(model: LayersModel, data: TrainData, opts: TrainOptions = {}): Promise<TrainResult> {
  const { tf } = await loadTf();
  const epochs = opts.epochs ?? 30;
  const patience = opts.patience ?? 5;
  const minDelta = opts.minDelta ?? 0;
  const tasks = resolveTasks(model, opts);
  for (const split of [data.train, data.validation]) if (split) checkTargets(split, tasks);
  if (model.trainableWeights.length === 0) throw new NothingToTrainError('the model has no trainable layer');

  const size = model.inputs[0].shape[1] as number;
  const state: TrainState = opts.resume
    ? { ...opts.resume.state, history: [...opts.resume.state.history] }
    : { nextEpoch: 0, best: Infinity, bestEpoch: -1, wait: 0, history: [] };
  let bestWeights: Tensor[] | undefined = opts.resume?.bestWeights;
  // The optimizer's slots (Adam's moments), the weighting's variables and the data
  // are tensors too: all made inside the try, so a failure in any allocation frees
  // the others and the model leaves here holding only its weights.
  let optimizer: Fit['optimizer'] | undefined;
  let combiner: LossCombiner | undefined;
  let train: SplitTensors | undefined;
  let validation: SplitTensors | undefined;
  try {
    optimizer = tf.train.adam(opts.learningRate ?? 0.001);
    combiner = createLossCombiner(
      tf,
      opts.lossWeighting ?? { method: 'static' },
      tasks.map((t) => ({ name: t.name, weight: t.weight, type: t.head.type })),
      state.weighting,
    );
    train = splitTensors(tf, data.train, tasks, size);
    validation = data.validation && data.validation.count > 0 ? splitTensors(tf, data.validation, tasks, size) : undefined;
    const variables = [...model.trainableWeights.map((w) => w.read() as Variable), ...combiner.variables];
    let shared: Variable[] | undefined;
    if (combiner.afterBatch) {
      shared = lastSharedLayerWeights(model)?.weights;
      if (!shared)
        throw new UnsupportedLossWeightingError(
          `lossWeighting "${opts.lossWeighting?.method}" balances the tasks' gradients on the last shared layer, and no layer shared by every task trains here; use sharing "hard" with a trunk (or fine-tune base layers), or another loss weighting`,
        );
    }
    const fit: Fit = {
      tf,
      model,
      tasks,
      opts,
      optimizer,
      combiner,
      variables,
      shared,
      sharing: opts.sharing ?? { method: 'hard', trunk: [] },
      train,
      validation,
    };

    while (state.nextEpoch < epochs && !(state.wait >= patience && state.bestEpoch >= 0)) {
      const epoch = state.nextEpoch;
      const logs = await epochLogs(fit, data, epoch);
      const monitored = (opts.selectOnValidation === false ? undefined : logs.val_loss) ?? logs.loss;
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
      state.weighting = combiner.state();
      await opts.onEpoch?.(epoch, logs, { state: { ...state, history: [...state.history] }, bestWeights });
    }
    if (bestWeights) model.setWeights(bestWeights);
    return {
      history: state.history,
      bestEpoch: state.bestEpoch,
      epochsRun: state.history.length,
      stoppedEarly: state.nextEpoch < epochs,
      taskWeights: combiner.weights(),
    };
  } finally {
    bestWeights?.forEach((w) => w.dispose());
    optimizer?.dispose();
    combiner?.dispose();
    disposeSplit(train);
    disposeSplit(validation);
  }
}

export interface ObjectiveValue {
  /** Σ static weight × task loss + penalty. */
  total: number;
  /** Each task's masked mean loss. */
  tasks: Record<string, number>;
  /** The sharing penalty (0 for hard sharing). */
  penalty: number;
}

/**
 * The training objective on a split with static weights and dropout off, computed by
 * the same code the training loop runs: what a test checks against a hand computation.
 */
export async function trainingObjective(
  model: LayersModel,
  split: Split,
  opts: Pick<TrainOptions, 'tasks' | 'taskTypes' | 'lossWeights' | 'sharing'> = {},
): Promise<ObjectiveValue> {
  const { tf } = await loadTf();
  const tasks = resolveTasks(model, opts);
  checkTargets(split, tasks);
  const data = splitTensors(tf, split, tasks, model.inputs[0].shape[1] as number);
  try {
    return tf.tidy(() => {
      const { losses } = taskLosses(tf, model, data, tasks, { training: false, temperature: 2 });
      const values = Object.fromEntries(tasks.map((t) => [t.name, losses[t.name].dataSync()[0]]));
      const p = sharingPenalty(tf, model, opts.sharing ?? { method: 'hard', trunk: [] });
      const penalty = p ? p.dataSync()[0] : 0;
      return { tasks: values, penalty, total: tasks.reduce((a, t) => a + t.weight * values[t.name], 0) + penalty };
    });
  } finally {
    disposeSplit(data);
  }
}

/** Validation losses per task and their static-weighted sum, and accuracy per classification task. */
async function validationLogs(tf: Tf, model: LayersModel, data: SplitTensors, split: Split, tasks: TrainTask[], temperature: number): Promise<EpochLogs> {
  const logs: EpochLogs = {};
  const losses = tf.tidy(() => {
    const l = taskLosses(tf, model, data, tasks, { training: false, temperature }).losses;
    return tasks.map((t) => l[t.name].dataSync()[0]);
  });
  logs.val_loss = tasks.reduce((a, t, i) => a + t.weight * losses[i], 0);
  tasks.forEach((t, i) => (logs[`val_loss_${t.name}`] = losses[i]));
  const classification = tasks.map((t, i) => ({ t, i })).filter(({ t, i }) => t.head.type === 'classification' && !data.soft[i]);
  if (classification.length === 0) return logs;
  const outs = asList(model.predict(data.x));
  const accs: number[] = [];
  try {
    for (const { t, i } of classification) {
      const targets = split.targets[t.name];
      const argmax = outs[i].argMax(-1);
      const pred = (await argmax.data()) as Int32Array;
      argmax.dispose();
      let n = 0;
      let correct = 0;
      for (let r = 0; r < split.count; r++) {
        if (targets[r] < 0) continue;
        n++;
        if (pred[r] === targets[r]) correct++;
      }
      if (n > 0) {
        logs[`val_acc_${t.name}`] = correct / n;
        accs.push(correct / n);
      }
    }
  } finally {
    outs.forEach((o) => o.dispose());
  }
  if (accs.length) logs.val_acc = accs.reduce((a, b) => a + b, 0) / accs.length;
  return logs;
}
