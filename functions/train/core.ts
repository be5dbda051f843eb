/**
 * The training job: prepared shards in, a published model version out.
 *
 * report + splits → resolve base → embed every split once (frozen base) → train
 * heads on the embeddings (checkpoint per epoch) → evaluate on the test split →
 * write models/<model>/<version>/ (model, report.json, metadata.json last) → move
 * `latest`. The job status tells the user each phase; a failure ends in `failed`
 * with a message meant for the user, and never touches what is already published.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import { ZodError } from 'zod';
import { readReport, readSplit, ShardFormatError, type Shard } from '../../shared/data/shards.js';
import { readJobStatus, updateJobStatus, jobStatusKey } from '../../shared/jobs/status.js';
import { newVersionId, versionPrefix, writeMetadata } from '../../shared/models/registry.js';
import { getJsonIfExists, NotFoundError, putJson, type ObjectStore } from '../../shared/ports/object-store.js';
import type { JobStatus } from '../../shared/schemas/job.js';
import type { InputSpec, ModelMetadata, TaskHead } from '../../shared/schemas/model.js';
import type { DatasetReport, SplitName } from '../../shared/schemas/report.js';
import { tasksOf, type TrainSpec } from '../../shared/schemas/spec.js';
import { UnknownBaseModelError } from '../../shared/ml/base-models.js';
import { EmbedderError, type ImageShape } from '../../shared/ml/embedder.js';
import { buildHeadModel, UnsupportedArchitectureError } from '../../shared/ml/heads.js';
import { UnsupportedLossWeightingError } from '../../shared/ml/loss-weighting.js';
import { compareWithSingleTask, evaluateTasks, headlineMetric, summaryMetrics, tuneThresholds, withTargetStatistics, type SharingComparison } from '../../shared/ml/mtl-evaluate.js';
import { loadWeights, saveModel, saveWeights } from '../../shared/ml/model-io.js';
import { countLabelled, isLabelled, LabelError, selectTargets, taskKind, UnsupportedTaskTypeError, type TaskTargets } from '../../shared/ml/task-kinds.js';
import { applyPromotion } from '../../shared/models/promotion.js';
import { ContinualError } from '../../shared/ml/continual.js';
import { FineTuneError } from '../../shared/ml/fine-tune.js';
import { baselineStage, buildContinualFor, continualReport, embedJobSplits, fineTuneStage, prepareJobBase, promotionStage, trainContinual, type EmbeddedSplits } from '../../shared/ml/transfer-job.js';
import { trainHeads, TrainingDivergedError, type EpochLogs, type HeadSplit, type TrainCheckpoint, type TrainState } from '../../shared/ml/train.js';

export interface TrainJobInput {
  jobId: string;
  /** `prepared/<dataset>/<hash>`. */
  preparedPrefix: string;
}

export interface TrainJobDeps {
  store: ObjectStore;
  /** Progress lines for a human (stderr in the job). @default no logging */
  log?: (line: string) => void;
  /** @default () => new Date() */
  now?: () => Date;
  /** Least time between two progress writes to the status object. @default 1000 ms */
  statusIntervalMs?: number;
}

export type TrainJobResult =
  | { ok: true; model: string; version: string }
  | { ok: false; error: { code: string; message: string } };

/** A problem with the job's input that the user can fix (bad labels, too little data). */
export class TrainingInputError extends Error {
  override name = 'TrainingInputError';
}

/** A task the job would train has no label in the train split: its head would learn nothing and still be published. */
export class NoTrainLabelsError extends TrainingInputError {
  override name = 'NoTrainLabelsError';
}

/** Share of the job's progress bar each phase ends at. */
const PROGRESS = { loaded: 0.02, embedded: 0.45, trained: 0.9, evaluated: 0.95, published: 1 } as const;
const SPLITS: SplitName[] = ['train', 'validation', 'test'];

export const checkpointPrefix = (jobId: string) => `jobs/${jobId}/checkpoint`;

interface CheckpointManifest {
  /** Which architecture and labels the weights belong to; a mismatch means start over. */
  fingerprint: string;
  /** Key prefix of this epoch's weights (`…/e<epoch>`). */
  weightsPrefix: string;
  state: TrainState;
}

interface PreparedSplit {
  count: number;
  targets: Record<string, TaskTargets>;
  x: Float32Array;
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

/**
 * Runs one training job to its end. Never throws for a job failure: it records
 * `failed` with a readable error and returns it (it throws only when the status
 * itself cannot be written).
 */
export async function runTrainingJob(input: TrainJobInput, deps: TrainJobDeps): Promise<TrainJobResult> {
  const { store } = deps;
  const log = deps.log ?? (() => {});
  const now = deps.now ?? (() => new Date());
  const interval = deps.statusIntervalMs ?? 1000;
  const started = now().getTime();
  const timings: Record<string, number> = {};
  const lap = (() => {
    let t = started;
    return (name: string) => {
      const n = now().getTime();
      timings[`${name}Ms`] = n - t;
      t = n;
    };
  })();
  // Status writes are read-modify-write; chain them so a progress write fired from
  // a callback can never land after (and undo) a later phase change.
  let statusQueue: Promise<unknown> = Promise.resolve();
  const setStatus = (patch: Partial<JobStatus>): Promise<JobStatus> => {
    const next = statusQueue.then(() => updateJobStatus(store, input.jobId, patch));
    statusQueue = next.catch(() => {});
    return next;
  };
  let lastWrite = 0;
  /** Progress writes within a phase, at most one per interval. */
  const throttled = async (patch: Partial<JobStatus>) => {
    const t = now().getTime();
    if (t - lastWrite < interval) return;
    lastWrite = t;
    await setStatus(patch);
  };

  let report: DatasetReport | undefined;
  try {
    report = await readReport(store, input.preparedPrefix);
    const existing = await ensureStatus(store, input.jobId, report, now);
    if (existing.state === 'succeeded' && existing.version) {
      log(`job ${input.jobId} already succeeded with version ${existing.version}; nothing to do`);
      return { ok: true, model: existing.model, version: existing.version };
    }
    if (existing.state === 'cancelled') {
      log(`job ${input.jobId} was cancelled; not starting`);
      return { ok: false, error: { code: 'cancelled', message: 'the job was cancelled' } };
    }
    const spec = report.spec;
    const modelName = spec.model ?? report.dataset;
    await setStatus({ state: 'running', phase: 'loading', progress: 0, error: undefined });
    log(`job ${input.jobId}: model ${modelName} from ${report.dataset}@${report.hash.slice(0, 12)}, base ${spec.base}`);

    if (spec.mode !== 'train') throw new TrainingInputError(`mode "${spec.mode}" does not use a training job`);
    let heads = headsFor(spec, report);
    const isVector = spec.input.type === 'vector';
    if (isVector && spec.base !== 'none') throw new TrainingInputError(`vector inputs need base "none", not "${spec.base}"`);
    // Transfer: which embedder feeds the model (a base, a trained model's trunk, the
    // model being extended) and where it is cut (lower when fine-tuning).
    const jobBase = await prepareJobBase(store, spec, heads);
    heads = jobBase.heads;
    const base = jobBase.base;

    const shards: Partial<Record<SplitName, Shard>> = {};
    for (const split of SPLITS) shards[split] = await readSplit(store, report, split);
    for (const split of SPLITS) {
      const s = shards[split]!;
      if (s.records.length > 0 && s.dtype !== (isVector ? 'float32' : 'uint8')) throw new TrainingInputError(`the ${split} shards hold ${s.dtype} data, expected ${isVector ? 'float32 vectors' : 'uint8 images'}`);
    }
    const input_ = inputSpec(report, isVector);
    await setStatus({ progress: PROGRESS.loaded });
    lap('loading');

    // Embeddings: the frozen base runs once per record, here; training reads only these.
    await setStatus({ phase: 'embedding' });
    const prepared: Partial<Record<SplitName, PreparedSplit>> = {};
    let embeddingSize: number;
    let embedded: EmbeddedSplits | undefined;
    if (isVector) {
      embeddingSize = input_.type === 'vector' ? input_.size : 0;
      for (const split of SPLITS) prepared[split] = labelledRecords(shards[split]!, heads, embeddingSize, (x) => (x instanceof Float32Array ? x : Float32Array.from(x)));
    } else {
      const sourceShape = report.inputShape as ImageShape;
      if (sourceShape.length !== 3) throw new TrainingInputError(`image records must be h×w×c, the report says ${report.inputShape.join('×')}`);
      const total = SPLITS.reduce((a, s) => a + shards[s]!.records.length, 0);
      const offset = { train: 0, validation: shards.train!.records.length, test: shards.train!.records.length + shards.validation!.records.length };
      // Through the embedding cache: a job on the same images skips the base's forward pass.
      embedded = await embedJobSplits({
        store,
        jobBase,
        shards: shards as Record<SplitName, Shard>,
        sourceShape,
        select: (shard) => selectLabelled(shard, heads),
        onCacheError: (err) => log(`embedding cache unavailable (${err instanceof Error ? err.message : String(err)}); embedding without it`),
        onProgress: (split, n, count) => {
          void throttled({ progress: PROGRESS.loaded + ((PROGRESS.embedded - PROGRESS.loaded) * (offset[split] + n)) / Math.max(1, total) }).catch(() => {});
          log(`embedding ${split}: ${n}/${count}`);
        },
      });
      embeddingSize = embedded.size;
      Object.assign(prepared, embedded.prepared);
      await setStatus({ embeddingCache: embedded.cache });
      log(`embedding cache: ${embedded.cache} (base ${jobBase.baseName}${jobBase.cut ? ` cut at ${jobBase.cut.layer}` : ''})`);
    }
    const train = prepared.train!;
    const validation = prepared.validation!;
    const test = prepared.test!;
    if (train.count < 2) throw new TrainingInputError(`the train split has ${train.count} labelled record${train.count === 1 ? '' : 's'}; add more data`);
    checkTrainLabels(heads, tasksOf(spec).map((t) => t.name), prepared as Record<SplitName, PreparedSplit>);
    // Regression heads are standardised with the train split's mean and std (stored in the head).
    heads = withTargetStatistics(heads, toHeadSplit(train));
    await setStatus({ progress: PROGRESS.embedded });
    lap('embedding');

    // Training, resumable per epoch (a Spot retry continues where the last attempt stopped).
    const opts = spec.training;
    const model = jobBase.from ? await buildContinualFor(jobBase, spec) : await buildHeadModel({ embeddingSize, tasks: heads, sharing: spec.sharing, dropout: opts.dropout, seed: opts.seed });
    let fineTuned: Awaited<ReturnType<typeof fineTuneStage>> | undefined;
    let trained: Awaited<ReturnType<typeof trainHeads>>;
    let resumedFrom: number | undefined;
    try {
      const fingerprint = JSON.stringify({ embeddingSize, heads, sharing: spec.sharing, base: base.name, hash: report.hash });
      const resume = await loadCheckpoint(store, input.jobId, fingerprint, model);
      if (resume) {
        resumedFrom = resume.state.nextEpoch;
        log(`resuming from the checkpoint after epoch ${resumedFrom}`);
      }
      await setStatus({ phase: 'training', epoch: resumedFrom ?? 0, epochs: opts.epochs });
      // One choice for the multi-task model and the single-task models it is compared with.
      const selectOnValidation = jobBase.from ? undefined : selectsEpochs(validation.count, log);
      trained = jobBase.from
        ? ((await trainContinual(jobBase, model, { train, validation }, spec, async (epoch, logs) => {
            await setStatus({ epoch: epoch + 1, epochs: opts.epochs, metrics: pick(logs, ['loss', 'val_loss']) });
            log(`epoch ${epoch + 1}/${opts.epochs} (extending ${spec.from}) ${Object.entries(logs).map(([k, v]) => `${k}=${v.toFixed(4)}`).join(' ')}`);
          })) as unknown as typeof trained)
        : await trainHeads(model, { train: toHeadSplit(train), validation: validation.count > 0 ? toHeadSplit(validation) : undefined }, {
        selectOnValidation,
        epochs: opts.epochs,
        batchSize: opts.batchSize,
        learningRate: opts.learningRate,
        patience: opts.patience,
        tasks: heads,
        lossWeights: Object.fromEntries(tasksOf(spec).map((t) => [t.name, t.weight])),
        lossWeighting: spec.lossWeighting,
        sharing: spec.sharing,
        seed: opts.seed,
        resume,
        onEpoch: async (epoch, logs, checkpoint) => {
          await saveCheckpoint(store, input.jobId, fingerprint, model, checkpoint);
          await setStatus({
            epoch: epoch + 1,
            epochs: opts.epochs,
            metrics: pick(logs, ['loss', 'val_loss', 'val_acc']),
            progress: PROGRESS.embedded + ((PROGRESS.trained - PROGRESS.embedded) * (epoch + 1)) / opts.epochs,
          });
          log(`epoch ${epoch + 1}/${opts.epochs} ${Object.entries(logs).map(([k, v]) => `${k}=${v.toFixed(4)}`).join(' ')}`);
        },
      });
      lap('training');
      if (jobBase.fineTune && embedded) {
        await setStatus({ phase: 'fine-tuning' });
        fineTuned = await fineTuneStage({
          jobBase,
          heads: model,
          tasks: heads,
          embedded,
          spec,
          onEpoch: (epoch, logs) => log(`fine-tuning ${jobBase.fineTune!.plan.trainable.join(', ')}: epoch ${epoch + 1} ${Object.entries(logs).map(([k, v]) => `${k}=${v.toFixed(4)}`).join(' ')}`),
        });
        log(`fine-tuned: ${Object.entries(fineTuned.report.test).map(([t, v]) => `${t} test accuracy ${v.before.toFixed(3)} → ${v.after.toFixed(3)}`).join(', ')}`);
        lap('fineTuning');
      }
      const served = fineTuned?.model ?? model;

      await setStatus({ phase: 'evaluating', progress: PROGRESS.trained });
      // Thresholds belong to the served model, on the inputs it reads (cut activations once fine-tuned).
      const servedValidation = fineTuned && embedded?.cutX ? { ...toHeadSplit(validation), x: embedded.cutX.validation } : toHeadSplit(validation);
      heads = await tuneThresholds(served, heads, validation.count > 0 ? servedValidation : undefined);
      const evaluation = await evaluateTasks(served, heads, fineTuned ? fineTuned.test : toHeadSplit(test));
      // "Does sharing help?": the same data and training, one single-task model per main task.
      let sharingComparison: Record<string, SharingComparison> | undefined;
      if (heads.length > 1) {
        sharingComparison = await compareWithSingleTask({
          embeddingSize,
          heads,
          sharing: spec.sharing,
          data: { train: toHeadSplit(train), validation: validation.count > 0 ? toHeadSplit(validation) : undefined },
          test: toHeadSplit(test),
          shared: evaluation,
          training: { epochs: opts.epochs, batchSize: opts.batchSize, learningRate: opts.learningRate, patience: opts.patience, seed: opts.seed, selectOnValidation },
          dropout: opts.dropout,
          seed: opts.seed,
          onTask: (task, i, n) => {
            log(`single-task ${task} (${i + 1}/${n}) trained for the sharing comparison`);
            return throttled({ progress: PROGRESS.trained + ((PROGRESS.evaluated - PROGRESS.trained) * (i + 1)) / n }).catch(() => {});
          },
        });
      }
      await setStatus({ progress: PROGRESS.evaluated });
      lap('evaluating');

      // Publish: every file of the version first, metadata.json last, then the alias.
      await setStatus({ phase: 'publishing' });
      const createdAt = now();
      const version = newVersionId(createdAt);
      const prefix = versionPrefix(modelName, version);
      await saveModel(served, store, prefix);
      const testMetrics: Record<string, Record<string, number>> = Object.fromEntries(Object.entries(evaluation).map(([task, m]) => [task, summaryMetrics(m)]));
      // Does transfer help, and may this version replace the serving one?
      const continual = jobBase.from ? await continualReport(store, jobBase, served) : undefined;
      const baseline = embedded ? await baselineStage({ store, shards: shards as Record<SplitName, Shard>, embedded, sourceShape: report.inputShape as ImageShape, heads, seed: opts.seed, epochs: opts.epochs, transferTest: testMetrics, spec }) : undefined;
      if (baseline) log(baseline.comparison.verdict);
      const promotion = await promotionStage({ store, model: modelName, spec, heads, candidate: testMetrics, test: shards.test!, sourceShape: report.inputShape, served, jobBase, dataset: { name: report.dataset, hash: report.hash }, continual, log });
      log(promotion.reason);
      const transferMetrics = { ...(baseline ? { baseline: baseline.comparison } : {}), ...(fineTuned ? { fineTune: fineTuned.report.test } : {}), ...(continual ? { continual } : {}), promotion };
      lap('publishing');
      timings.totalMs = now().getTime() - started;
      await putJson(store, `${prefix}/report.json`, {
        model: modelName,
        version,
        jobId: input.jobId,
        createdAt: createdAt.toISOString(),
        dataset: { name: report.dataset, hash: report.hash, preparedPrefix: input.preparedPrefix },
        base: { name: base.name, embeddingSize, ...(base.kind === 'pretrained' ? { embeddingLayer: base.descriptor.embedding.layer } : {}) },
        splits: Object.fromEntries(SPLITS.map((s) => [s, prepared[s]!.count])),
        tasks: Object.fromEntries(
          heads.map((h) => [
            h.name,
            {
              type: h.type,
              auxiliary: h.auxiliary,
              labels: h.labels,
              ...(h.thresholds ? { thresholds: h.thresholds } : {}),
              // Without labelled validation rows the thresholds stay 0.5: say so rather than pass them off as tuned.
              ...(h.type === 'multilabel' ? { thresholdsTuned: countLabelled(validation.targets[h.name], validation.count) > 0 } : {}),
              ...(h.mean ? { size: h.size, mean: h.mean, std: h.std } : {}),
              labelled: Object.fromEntries(SPLITS.map((s) => [s, countLabelled(prepared[s]!.targets[h.name], prepared[s]!.count)])),
              lossWeight: trained.taskWeights[h.name],
              test: evaluation[h.name] ?? null,
              ...(sharingComparison?.[h.name] ? { sharingComparison: sharingComparison[h.name] } : {}),
            },
          ]),
        ),
        training: {
          epochs: opts.epochs,
          epochsRun: trained.epochsRun,
          bestEpoch: trained.bestEpoch + 1,
          stoppedEarly: trained.stoppedEarly,
          resumedFromEpoch: resumedFrom,
          history: trained.history,
          sharing: spec.sharing,
          lossWeighting: spec.lossWeighting,
          taskWeights: trained.taskWeights,
        },
        ...(sharingComparison ? { sharingComparison } : {}),
        transfer: {
          embeddingCache: embedded?.cache,
          ...(jobBase.cut ? { cut: jobBase.cut } : {}),
          ...(baseline ? { baseline: { ...baseline.result, ...baseline.comparison } } : {}),
          ...(fineTuned ? { fineTune: fineTuned.report } : {}),
          ...(continual ? { continual } : {}),
          promotion,
        },
        timings,
      });
      const meta: ModelMetadata = {
        model: modelName,
        version,
        createdAt: createdAt.toISOString(),
        kind: 'train',
        input: input_,
        base: { name: jobBase.baseName, embeddingSize: fineTuned?.size ?? embeddingSize, ...(jobBase.cut ? { cut: jobBase.cut } : {}) },
        tasks: heads,
        dataset: { name: report.dataset, hash: report.hash },
        spec,
        jobId: input.jobId,
        metrics: { ...testMetrics, ...(sharingComparison ? { sharingComparison } : {}), ...transferMetrics },
      };
      await writeMetadata(store, meta);
      await applyPromotion(store, modelName, version, promotion);
      await deleteCheckpoint(store, input.jobId);
      await setStatus({ state: 'succeeded', phase: 'done', progress: PROGRESS.published, version, promoted: promotion.promote, promotionReason: promotion.reason, metrics: flatMetrics(testMetrics) });
      log(`published ${modelName}@${version} (${Object.entries(evaluation).map(([t, m]) => `${t}: ${m ? `${headlineMetric(m).metric} ${headlineMetric(m).value.toFixed(3)}` : 'no test records'}`).join(', ')})`);
      return { ok: true, model: modelName, version };
    } finally {
      model.dispose();
      fineTuned?.model.dispose();
      jobBase.dispose();
    }
  } catch (err) {
    const error = toJobError(err);
    log(`job ${input.jobId} failed: ${error.code}: ${error.message}`);
    if (err instanceof Error && error.code === 'internal_error' && err.stack) log(err.stack);
    try {
      if (!report) {
        // Without a report there may be no status either; only update one that exists.
        if (await readJobStatus(store, input.jobId)) await setStatus({ state: 'failed', error });
      } else {
        await setStatus({ state: 'failed', error });
      }
    } catch (statusErr) {
      log(`could not record the failure: ${statusErr instanceof Error ? statusErr.message : String(statusErr)}`);
      throw statusErr;
    }
    return { ok: false, error };
  }
}

/** The status object is written by preprocessing; create it if a job was started by hand. */
async function ensureStatus(store: ObjectStore, jobId: string, report: DatasetReport, now: () => Date): Promise<JobStatus> {
  const current = await readJobStatus(store, jobId);
  if (current) return current;
  const t = now().toISOString();
  const status: JobStatus = {
    jobId,
    model: report.spec.model ?? report.dataset,
    dataset: report.dataset,
    datasetHash: report.hash,
    state: 'submitted',
    progress: 0,
    metrics: {},
    createdAt: t,
    updatedAt: t,
  };
  await putJson(store, jobStatusKey(jobId), status);
  return status;
}

/** Task heads in output order; class labels sorted, from the dataset report. */
function headsFor(spec: TrainSpec, report: DatasetReport): TaskHead[] {
  return tasksOf(spec).map((task) => {
    const found = report.tasks[task.name];
    if (!found) throw new TrainingInputError(`task "${task.name}" has no labels in the dataset`);
    const labels = Object.keys(found.classes ?? {}).sort();
    const head: TaskHead =
      task.type === 'regression'
        ? { name: task.name, type: task.type, auxiliary: task.auxiliary, size: task.size ?? found.size ?? 1 }
        : { name: task.name, type: task.type, auxiliary: task.auxiliary, labels };
    if (task.type === 'classification' && labels.length < 2) {
      throw new TrainingInputError(`task "${task.name}" needs at least 2 classes to learn from, the dataset has ${labels.length}${labels.length ? ` (${labels.join(', ')})` : ''}`);
    }
    taskKind(task.type).outputUnits(head);
    return head;
  });
}

function inputSpec(report: DatasetReport, isVector: boolean): InputSpec {
  if (isVector) {
    if (report.inputShape.length !== 1) throw new TrainingInputError(`vector records must have one dimension, the report says ${report.inputShape.join('×')}`);
    return { type: 'vector', size: report.inputShape[0] };
  }
  const [h, w, c] = report.inputShape;
  return { type: 'image', shape: [h, w, c] };
}

/** Records with a label for at least one task; a record without any teaches nothing. */
function selectLabelled(shard: Shard, heads: TaskHead[]): { index: number[]; targets: Record<string, TaskTargets> } {
  const all = Object.fromEntries(heads.map((h) => [h.name, taskKind(h.type).encodeLabels(shard.records.map((r) => r.labels[h.name]), h)]));
  const index: number[] = [];
  const n = shard.records.length;
  for (let i = 0; i < n; i++) if (heads.some((h) => isLabelled(all[h.name], n, i))) index.push(i);
  const targets = Object.fromEntries(heads.map((h) => [h.name, selectTargets(all[h.name], n, index)]));
  return { index, targets };
}

/**
 * Every task the spec declares needs labelled train records: with none, a regression
 * head would be standardised with a made-up mean 0 and std 1 and a head of any type
 * would train on nothing. @throws NoTrainLabelsError naming the task and its label counts per split
 */
function checkTrainLabels(heads: TaskHead[], declared: string[], prepared: Record<SplitName, PreparedSplit>): void {
  for (const h of heads) {
    if (!declared.includes(h.name)) continue;
    const counts = Object.fromEntries(SPLITS.map((s) => [s, countLabelled(prepared[s].targets[h.name], prepared[s].count)]));
    if (counts.train > 0) continue;
    throw new NoTrainLabelsError(
      `${h.auxiliary ? 'auxiliary ' : ''}task "${h.name}" has no labelled record in the train split (labelled: ${SPLITS.map((s) => `${s} ${counts[s]}`).join(', ')}); label some train records or remove the task`,
    );
  }
}

function subsetRows<T extends Uint8Array | Float32Array>(data: T, per: number, index: number[]): T {
  if (index.length * per === data.length) return data;
  const out = new (data.constructor as new (n: number) => T)(index.length * per);
  index.forEach((j, n) => out.set(data.subarray(j * per, (j + 1) * per), n * per));
  return out;
}

function labelledRecords(shard: Shard, heads: TaskHead[], size: number, asFloat: (x: Uint8Array | Float32Array) => Float32Array): PreparedSplit {
  const sel = selectLabelled(shard, heads);
  return { count: sel.index.length, targets: sel.targets, x: subsetRows(asFloat(shard.data), size, sel.index) };
}

const toHeadSplit = (s: PreparedSplit): HeadSplit => ({ x: s.x, count: s.count, targets: s.targets });
const pick = (logs: EpochLogs, keys: string[]) => Object.fromEntries(keys.filter((k) => logs[k] !== undefined).map((k) => [k, logs[k]]));

/** `{class: {accuracy: 0.9}}` → `{"class.accuracy": 0.9}` for the status' flat metrics. */
function flatMetrics(m: Record<string, Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(m).flatMap(([task, v]) => Object.entries(v).map(([k, x]) => [`test_${k}${Object.keys(m).length > 1 ? `_${task}` : ''}`, x])));
}

async function saveCheckpoint(store: ObjectStore, jobId: string, fingerprint: string, model: LayersModel, cp: TrainCheckpoint): Promise<void> {
  const prefix = checkpointPrefix(jobId);
  const previous = await getJsonIfExists<CheckpointManifest>(store, `${prefix}/state.json`);
  // Each epoch's weights go to a fresh folder and state.json (written last) points
  // at it, so a crash mid-save leaves the previous checkpoint whole.
  const weightsPrefix = `${prefix}/e${cp.state.nextEpoch}`;
  await saveWeights(store, `${weightsPrefix}/current`, model.getWeights());
  if (cp.bestWeights) await saveWeights(store, `${weightsPrefix}/best`, cp.bestWeights);
  const manifest: CheckpointManifest = { fingerprint, weightsPrefix, state: cp.state };
  await putJson(store, `${prefix}/state.json`, manifest);
  if (previous && previous.weightsPrefix !== weightsPrefix) await deleteUnder(store, `${previous.weightsPrefix}/`);
}

async function loadCheckpoint(store: ObjectStore, jobId: string, fingerprint: string, model: LayersModel): Promise<TrainCheckpoint | undefined> {
  const manifest = await getJsonIfExists<CheckpointManifest>(store, `${checkpointPrefix(jobId)}/state.json`);
  if (!manifest || manifest.fingerprint !== fingerprint) return undefined;
  try {
    const current = await loadWeights(store, `${manifest.weightsPrefix}/current`);
    model.setWeights(current);
    current.forEach((t) => t.dispose());
    const bestWeights = manifest.state.bestEpoch >= 0 ? await loadWeights(store, `${manifest.weightsPrefix}/best`) : undefined;
    // JSON has no Infinity: a checkpoint before any improvement stores null.
    const best = typeof manifest.state.best === 'number' ? manifest.state.best : Infinity;
    return { state: { ...manifest.state, best }, bestWeights };
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

async function deleteUnder(store: ObjectStore, prefix: string): Promise<void> {
  for (const o of await store.list(prefix)) await store.delete(o.key);
}

async function deleteCheckpoint(store: ObjectStore, jobId: string): Promise<void> {
  await deleteUnder(store, `${checkpointPrefix(jobId)}/`);
}

/** Maps an error to what the user reads in the job status: a code and one readable line. */
export function toJobError(err: unknown): { code: string; message: string } {
  const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
  if (err instanceof UnknownBaseModelError) return { code: 'unknown_base_model', message: msg };
  if (err instanceof NotFoundError) return { code: 'missing_data', message: `the prepared dataset is incomplete: ${err.key} is missing; upload train.json again to prepare it anew` };
  if (err instanceof ShardFormatError) return { code: 'invalid_data', message: `a prepared shard is damaged: ${msg}` };
  if (err instanceof ZodError) return { code: 'invalid_data', message: `prepared data does not match its schema: ${err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).slice(0, 3).join('; ')}` };
  if (err instanceof NoTrainLabelsError) return { code: 'no_train_labels', message: msg };
  if (err instanceof LabelError || err instanceof TrainingInputError) return { code: 'invalid_dataset', message: msg };
  if (err instanceof UnsupportedTaskTypeError || err instanceof UnsupportedArchitectureError || err instanceof UnsupportedLossWeightingError) return { code: 'unsupported_spec', message: msg };
  if (err instanceof FineTuneError || err instanceof ContinualError) return { code: 'invalid_spec', message: msg };
  if (err instanceof TrainingDivergedError) return { code: 'training_diverged', message: msg };
  if (err instanceof EmbedderError) return { code: 'base_model_error', message: msg };
  return { code: 'internal_error', message: `training failed unexpectedly: ${msg}` };
}
