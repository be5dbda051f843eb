/**
 * How a job trains, chosen once from the spec: a plan from a registry keyed by
 * `TrainingPlanNameSchema`, so the stages never branch on the training mode.
 *
 * - heads: heads on the frozen base's embeddings;
 * - fine-tune: the same heads, then the top layers of the base trained with them;
 * - continual: a published model extended with new tasks or classes.
 *
 * Every stage that trains checkpoints after each epoch (./checkpoint.ts), so a
 * retried job resumes whatever its kind.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import { buildHeadModel, headLayerName } from '../../shared/ml/architectures.js';
import { refitLinear } from '../../shared/ml/search.js';
import { concatSplits } from '../../shared/ml/split.js';
import type { EpochLogs, TrainCheckpoint } from '../../shared/ml/train.js';
import {
  buildContinualFor,
  fineTuneStage,
  prepareContinualBase,
  prepareFineTuneBase,
  prepareFrozenBase,
  taskWeightsOf,
  trainContinual,
  type JobBase,
} from '../../shared/ml/transfer-job.js';
import type { ObjectStore } from '../../shared/ports/object-store.js';
import type { TaskHead } from '../../shared/schemas/model.js';
import type { TrainSpec } from '../../shared/schemas/spec.js';
import type { TrainingPlanName } from '../../shared/schemas/version-report.js';
import { stageCheckpoint } from './checkpoint.js';
import type { EmbeddedJob, SearchedJob, StageDeps, TrainedJob } from './context.js';
import { PROGRESS } from './progress.js';

/** What a plan's training adds to the job. */
export type PlanTraining = Omit<TrainedJob, keyof SearchedJob>;

export interface TrainingPlan {
  name: TrainingPlanName;
  /** Which embedder feeds the model and where it is cut; the tasks of the model to train. */
  prepareBase(store: ObjectStore, spec: TrainSpec, heads: TaskHead[]): Promise<JobBase>;
  train(ctx: SearchedJob, deps: StageDeps): Promise<PlanTraining>;
}

/**
 * Records a validation split needs before early stopping may pick an epoch by it.
 * Below this the choice is noise: on the shapes demo (11 validation records) the
 * best val_loss fell at epoch 6 and held-out accuracy was 0.77, while training the
 * head for the full schedule on cached embeddings reached 0.97.
 */
export const MIN_VALIDATION_FOR_EARLY_STOPPING = 50;

function selectsEpochs(validationCount: number, log: (line: string) => void): boolean {
  if (validationCount >= MIN_VALIDATION_FOR_EARLY_STOPPING) return true;
  log(`validation split has ${validationCount} records, too few to choose an epoch by: training for the full schedule`);
  return false;
}

const describe = (logs: EpochLogs) =>
  Object.entries(logs)
    .map(([k, v]) => `${k}=${v.toFixed(4)}`)
    .join(' ');
const pick = (logs: EpochLogs, keys: string[]) => Object.fromEntries(keys.filter((k) => logs[k] !== undefined).map((k) => [k, logs[k]]));
const trainingProgress = (epoch: number, epochs: number) => PROGRESS.embedded + ((PROGRESS.trained - PROGRESS.embedded) * (epoch + 1)) / epochs;

/** What a checkpoint's weights belong to: a mismatch (another spec or dataset under the same job id) starts over. */
const fingerprintOf = (ctx: EmbeddedJob) =>
  JSON.stringify({ embeddingSize: ctx.embeddingSize, heads: ctx.heads, sharing: ctx.spec.sharing, base: ctx.jobBase.base.name, hash: ctx.report.hash });

/** Heads on the embeddings, resumable per epoch (a Spot retry continues where the last attempt stopped). */
async function trainHeads(ctx: EmbeddedJob, deps: StageDeps, how: { refit?: boolean } = {}): Promise<{ model: LayersModel; training: PlanTraining }> {
  const { spec, heads, embeddingSize, data } = ctx;
  const opts = spec.training;
  const model = await buildHeadModel({ embeddingSize, tasks: heads, sharing: spec.sharing, dropout: opts.dropout, seed: opts.seed });
  deps.defer(() => model.dispose());
  const checkpoint = stageCheckpoint(deps.store, ctx.input.jobId, 'heads', fingerprintOf(ctx));
  const resume = await checkpoint.load(model);
  const resumedFrom = resume?.state.nextEpoch;
  if (resume) deps.log(`resuming from the checkpoint after epoch ${resumedFrom}`);
  await deps.progress.update({ phase: 'training', epoch: resumedFrom ?? 0, epochs: opts.epochs });
  // One choice for the multi-task model and the single-task models it is compared with.
  const selectOnValidation = how.refit ? false : selectsEpochs(data.validation.count, deps.log);
  const result = await deps.trainer(
    model,
    { train: data.train, validation: data.validation.count > 0 ? data.validation : undefined },
    {
      selectOnValidation,
      epochs: opts.epochs,
      batchSize: opts.batchSize,
      learningRate: opts.learningRate,
      patience: opts.patience,
      tasks: heads,
      lossWeights: taskWeightsOf(spec, heads),
      lossWeighting: spec.lossWeighting,
      sharing: spec.sharing,
      seed: opts.seed,
      resume,
      onEpoch: async (epoch: number, logs: EpochLogs, cp: TrainCheckpoint) => {
        await checkpoint.save(model, cp);
        await deps.progress.epoch(
          { epoch: epoch + 1, ...logs },
          {
            epoch: epoch + 1,
            epochs: opts.epochs,
            metrics: pick(logs, ['loss', 'acc', 'val_loss', 'val_acc']),
            progress: trainingProgress(epoch, opts.epochs),
          },
        );
        deps.log(`epoch ${epoch + 1}/${opts.epochs} ${describe(logs)}`);
      },
    },
  );
  return {
    model,
    training: {
      served: model,
      servedData: { validation: data.validation, test: data.test },
      result,
      resumedFrom,
      selectOnValidation,
      servedSize: embeddingSize,
    },
  };
}

const headsPlan: TrainingPlan = {
  name: 'heads',
  prepareBase: prepareFrozenBase,
  async train(ctx, deps) {
    if (ctx.linearRefit) return refitLinearHead(ctx, ctx.linearRefit.l2, deps);
    if (ctx.hiddenRefit) return refitHiddenHead(ctx, ctx.hiddenRefit.epochs, deps);
    return (await trainHeads(ctx, deps)).training;
  },
};

/**
 * The search's winner when the spec's hidden-layer model beat the linear ones
 * in its folds: the spec's head trained on train + validation for the epochs the
 * folds chose (no split left to stop on), then served and evaluated like any heads.
 */
async function refitHiddenHead(ctx: SearchedJob, epochs: number, deps: StageDeps): Promise<PlanTraining> {
  const { data } = ctx;
  const merged = concatSplits(data.train, data.validation, ctx.embeddingSize);
  deps.log(`refitting the hidden-layer head on ${merged.count} train + validation records for ${epochs} epochs (from the search's folds)`);
  const empty = {
    ...data.validation,
    count: 0,
    x: new Float32Array(0),
    targets: Object.fromEntries(Object.keys(merged.targets).map((t) => [t, new Int32Array(0)])),
  };
  const refit = await trainHeads(
    { ...ctx, data: { ...data, train: merged, validation: empty }, spec: { ...ctx.spec, training: { ...ctx.spec.training, epochs, patience: epochs } } },
    deps,
    { refit: true },
  );
  return { ...refit.training, servedData: { validation: data.validation, test: data.test } };
}

/**
 * The search's winner, linear: multinomial logistic regression per task with the
 * λ its folds chose, refitted on train + validation (the test split stays untouched),
 * served as a head model with no trunk. No epochs: L-BFGS fits it to its optimum.
 */
async function refitLinearHead(ctx: SearchedJob, l2: Record<string, number>, deps: StageDeps): Promise<PlanTraining> {
  const { data, heads, embeddingSize } = ctx;
  const model = await buildHeadModel({ embeddingSize, tasks: heads, sharing: { method: 'hard', trunk: [] }, dropout: 0, seed: ctx.spec.training.seed });
  deps.defer(() => model.dispose());
  const x = new Float32Array(data.train.x.length + data.validation.x.length);
  x.set(data.train.x);
  x.set(data.validation.x, data.train.x.length);
  const tasks = heads.map((h) => {
    const labels = new Int32Array(data.train.count + data.validation.count);
    labels.set(data.train.targets[h.name]);
    labels.set(data.validation.targets[h.name], data.train.count);
    return { name: h.name, classes: h.labels?.length ?? 0, labels };
  });
  const fits = await refitLinear(model, x, embeddingSize, tasks, l2, headLayerName);
  for (const [task, f] of Object.entries(fits))
    deps.log(
      `refitted ${task} on ${f.records} train + validation records (λ ${l2[task]}, ${f.iterations} L-BFGS iterations, largest gradient ${f.gradientMax.toExponential(1)})`,
    );
  return {
    served: model,
    servedData: { validation: data.validation, test: data.test },
    result: { history: [], bestEpoch: -1, epochsRun: 0, stoppedEarly: false, taskWeights: Object.fromEntries(heads.map((h) => [h.name, 1])) },
    selectOnValidation: false,
    servedSize: embeddingSize,
  };
}

const fineTunePlan: TrainingPlan = {
  name: 'fine-tune',
  prepareBase: prepareFineTuneBase,
  async train(ctx, deps) {
    const heads = await trainHeads(ctx, deps);
    const embedded = ctx.embedded;
    const plan = ctx.jobBase.fineTune;
    // prepareFineTuneBase refuses base "none", so a fine-tuning job always embeds images through a cut base.
    if (!embedded?.cutX || !plan) throw new Error('a fine-tuning job has no cut activations');
    await deps.progress.update({ phase: 'fine-tuning' });
    const fineTuned = await fineTuneStage({
      jobBase: ctx.jobBase,
      heads: heads.model,
      tasks: ctx.heads,
      embedded,
      spec: ctx.spec,
      trainer: deps.trainer,
      checkpoint: stageCheckpoint(deps.store, ctx.input.jobId, 'fine-tune', JSON.stringify({ heads: fingerprintOf(ctx), fineTune: ctx.spec.fineTune })),
      log: deps.log,
      onEpoch: (epoch, logs) => deps.log(`fine-tuning ${plan.plan.trainable.join(', ')}: epoch ${epoch + 1} ${describe(logs)}`),
    });
    deps.defer(() => fineTuned.model.dispose());
    deps.log(
      `fine-tuned: ${Object.entries(fineTuned.report.test)
        .map(([t, v]) => `${t} test accuracy ${v.before.toFixed(3)} → ${v.after.toFixed(3)}`)
        .join(', ')}`,
    );
    return {
      ...heads.training,
      served: fineTuned.model,
      // Thresholds and metrics belong to the served model, on the inputs it reads: cut activations.
      servedData: { validation: { ...ctx.data.validation, x: embedded.cutX.validation }, test: fineTuned.test },
      servedSize: fineTuned.size,
      fineTune: fineTuned.report,
    };
  },
};

const continualPlan: TrainingPlan = {
  name: 'continual',
  prepareBase: prepareContinualBase,
  async train(ctx, deps) {
    const { spec, data } = ctx;
    const epochs = spec.training.epochs;
    const model = await buildContinualFor(ctx.jobBase, spec);
    deps.defer(() => model.dispose());
    const checkpoint = stageCheckpoint(deps.store, ctx.input.jobId, 'continual', JSON.stringify({ heads: fingerprintOf(ctx), from: spec.from }));
    const resume = await checkpoint.load(model);
    const resumedFrom = resume?.state.nextEpoch;
    if (resume) deps.log(`resuming from the checkpoint after epoch ${resumedFrom}`);
    await deps.progress.update({ phase: 'training', epoch: resumedFrom ?? 0, epochs });
    const result = await trainContinual(
      ctx.jobBase,
      model,
      { train: data.train, validation: data.validation },
      spec,
      async (epoch, logs, cp) => {
        await checkpoint.save(model, cp);
        await deps.progress.epoch(
          { epoch: epoch + 1, ...logs },
          { epoch: epoch + 1, epochs, metrics: pick(logs, ['loss', 'val_loss']), progress: trainingProgress(epoch, epochs) },
        );
        deps.log(`epoch ${epoch + 1}/${epochs} (extending ${spec.from}) ${describe(logs)}`);
      },
      deps.trainer,
      resume,
    );
    return { served: model, servedData: { validation: data.validation, test: data.test }, result, resumedFrom, servedSize: ctx.embeddingSize };
  },
};

/** Every plan, by name. */
export const TRAINING_PLANS: Record<TrainingPlanName, TrainingPlan> = { heads: headsPlan, 'fine-tune': fineTunePlan, continual: continualPlan };

/** The plan a spec asks for: extending a model (`from`) wins over fine-tuning, which builds on heads. */
export function choosePlan(spec: Pick<TrainSpec, 'from' | 'fineTune'>): TrainingPlan {
  return TRAINING_PLANS[spec.from ? 'continual' : spec.fineTune ? 'fine-tune' : 'heads'];
}
