/**
 * The transfer parts of a training job, called by its stages and training plans
 * (functions/train):
 *
 * 1. prepareFrozenBase / prepareFineTuneBase / prepareContinualBase: which embedder
 *    feeds the model (the spec's base, a trained model's trunk, the model being
 *    extended) and where it is cut (lower when fine-tuning), plus the tasks of an
 *    extended model; one per training plan.
 * 2. embedJobSplits: embeddings (or cut activations) per split through the
 *    embedding cache.
 * 3. buildContinualFor / trainContinual when extending a model.
 * 4. fineTuneStage after the heads converged.
 * 5. continualReport, startBaselineRun/baselineStage and promotionStage for the report and the gate.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { Shard } from '../data/shards.js';
import { decidePromotion, type MetricComparison, type PromotionDecision } from '../models/promotion.js';
import { readAlias, readMetadata, versionPrefix } from '../models/registry.js';
import { NotFoundError, type ObjectStore } from '../ports/object-store.js';
import type { ModelMetadata, TaskHead } from '../schemas/model.js';
import type { SplitName } from '../schemas/report.js';
import type { TrainSpec } from '../schemas/spec.js';
import { FineTuneReportSchema, TaskSummarySchema } from '../schemas/metrics.js';
import { z } from 'zod';
import { readReport, readSplit } from '../data/shards.js';
import { resolveBase, type ResolvedBase } from './base-models.js';
import { accuracyOf, compareWithBaseline, fitLinearBaseline, type BaselineComparison, type BaselineResult, type TransferFigures } from './baseline.js';
import { buildContinualModel, mergeHeads, resolveFrom, type MergedHeads } from './continual.js';
import { embedCached, embedForBase, embeddingKeyFor, lazyEmbedder, type CacheOutcome, type EmbeddingCut } from './embedding-cache.js';
import { loadEmbedder, type Embedder, type ImageShape, type LoadEmbedderOptions } from './embedder.js';
import { accuracyByTask, GATE_METRIC, versionOutputs } from './evaluate.js';
import { compareOnServingTest, lostClasses, measureOn, publishedGateModel, type GateModel } from './promotion-gate.js';
import { buildFineTuneModel, buildTopFeatureModel, FineTuneError, loadBaseGraph, planFineTune, type FineTunePlan } from './fine-tune.js';
import { SPLITS, subsetRows, type Split } from './split.js';
import { describeCut, isConcatCut } from './cuts.js';
import type { TaskTargets } from './task-kinds.js';
import { trainModel, type EpochLogs, type StageCheckpoint, type TrainCheckpoint, type TrainResult } from './train.js';
import { tasksOf } from '../schemas/spec.js';
import { startBaseline, type BaselineRun } from './baseline-thread.js';
import { predictOutputs } from './inference.js';
import { loadModel } from './model-io.js';

export interface JobBase {
  base: ResolvedBase;
  /** Tasks of the model to train (an extended model: old tasks first). */
  heads: TaskHead[];
  /** metadata.base.name of the new model (a `model:` base pinned to its version). */
  baseName: string;
  /** Where the embedder stops when not at the base's embedding layer. */
  cut?: EmbeddingCut;
  fineTune?: { graph: LayersModel; plan: FineTunePlan; embeddingLayer: string; pooling: 'none' | 'avg'; top: LayersModel };
  from?: { meta: ModelMetadata; merged: MergedHeads; old: LayersModel; trunkFrozen: boolean };
  dispose(): void;
}

/** A heads-only job: the spec's base, frozen at its embedding layer. */
export async function prepareFrozenBase(store: ObjectStore, spec: TrainSpec, heads: TaskHead[]): Promise<JobBase> {
  const base = await resolveBase(store, spec.base);
  return { base, heads, baseName: base.name, ...(spec.cut ? { cut: spec.cut } : {}), dispose: () => {} };
}

/**
 * A fine-tuning job: the spec's base cut below its top `fineTune.layers` layers,
 * and the frozen top alone (cut → embedding) to compute what the heads first train on.
 */
export async function prepareFineTuneBase(store: ObjectStore, spec: TrainSpec, heads: TaskHead[]): Promise<JobBase> {
  // The schema refuses this too; a spec built in code must not reach the planner with it.
  if (spec.cut && isConcatCut(spec.cut))
    throw new FineTuneError(
      `"fineTune" cannot use the concat cut ${describeCut(spec.cut)}: fine-tuning unfreezes the base above one single-tensor cut; remove "cut" or "fineTune"`,
    );
  const base = await resolveBase(store, spec.base);
  if (base.kind === 'none')
    throw new FineTuneError(
      '"fineTune" needs a base with layers to unfreeze; base "none" has none (remove fineTune, or choose a base such as "mobilenet_v2" or "model:<name>")',
    );
  const layers = spec.fineTune?.layers ?? 0;
  const g = await loadBaseGraph(store, base);
  try {
    const plan = planFineTune(g.graph, g.embeddingLayer, layers);
    const top = await buildTopFeatureModel({ graph: g.graph, plan, embeddingLayer: g.embeddingLayer, pooling: g.pooling });
    return {
      base,
      heads,
      baseName: base.name,
      cut: { layer: plan.cutLayer, pooling: 'none' },
      fineTune: { ...g, plan, top },
      dispose: () => {
        top.dispose();
        g.graph.dispose();
      },
    };
  } catch (err) {
    g.graph.dispose();
    throw err;
  }
}

/**
 * A continual job: the extended model's own embedder (base and cut), whatever
 * `base` says, since its heads read those embeddings; old tasks first.
 */
export async function prepareContinualBase(store: ObjectStore, spec: TrainSpec, heads: TaskHead[]): Promise<JobBase> {
  const meta = await resolveFrom(store, spec.from ?? '');
  const base = await resolveBase(store, meta.base.name);
  const merged = mergeHeads(meta.tasks, heads);
  const old = await loadModel(store, versionPrefix(meta.model, meta.version));
  return {
    base,
    heads: merged.heads,
    baseName: meta.base.name,
    cut: meta.base.cut,
    from: { meta, merged, old, trunkFrozen: !spec.fineTune },
    dispose: () => old.dispose(),
  };
}

export interface EmbeddedSplits {
  prepared: Record<SplitName, Split>;
  /** Records of each split that carry a label (indices into the shard). */
  index: Record<SplitName, number[]>;
  size: number;
  cache: CacheOutcome;
  /** Images found in the embedding cache, and images that went through the base. */
  images: { cached: number; embedded: number };
  /** Fine-tuning: count×cutSize activations at the cut, per split. */
  cutX?: Record<SplitName, Float32Array>;
}

/**
 * Embeds every split through the cache (all records, so what is cached does not
 * depend on the tasks), then keeps the labelled ones. The base is loaded only
 * when some image misses, and embeds only those.
 */
export async function embedJobSplits(input: {
  store: ObjectStore;
  jobBase: JobBase;
  shards: Record<SplitName, Shard>;
  sourceShape: ImageShape;
  select: (shard: Shard) => { index: number[]; targets: Record<string, TaskTargets> };
  onProgress?: (split: SplitName, done: number, total: number) => void;
  /** Told when the embedding cache could not be used (the job goes on without it). */
  onCacheError?: (err: unknown) => void;
  /** Loads the frozen embedder, only when some split misses the cache. @default the TensorFlow.js embedder */
  embedder?: (base: ResolvedBase, opts: LoadEmbedderOptions) => Promise<Embedder>;
}): Promise<EmbeddedSplits> {
  const { store, jobBase } = input;
  const load = input.embedder ?? ((base, opts) => loadEmbedder(store, base, opts));
  const lazy = lazyEmbedder(() => load(jobBase.base, jobBase.cut ? { embedding: jobBase.cut } : {}));
  let outcome: CacheOutcome = 'miss';
  let images = { cached: 0, embedded: 0 };
  const prepared = {} as Record<SplitName, Split>;
  const index = {} as Record<SplitName, number[]>;
  const cutX = {} as Record<SplitName, Float32Array>;
  let rawSize = 0;
  const top = jobBase.fineTune?.top;
  const size = top ? (top.outputs[0].shape[1] as number) : 0;
  try {
    const raw = {} as Record<SplitName, Float32Array>;
    const baseKey = await embeddingKeyFor(store, jobBase.base, jobBase.cut);
    // One call for every split: one read of the cache index, one new block for what is missing.
    const counts = SPLITS.map((s) => input.shards[s].records.length);
    const starts = counts.map((_, i) => counts.slice(0, i).reduce((a, b) => a + b, 0));
    const total = counts.reduce((a, b) => a + b, 0);
    if (total > 0) {
      const r = await embedCached({
        store,
        baseKey,
        pixels: SPLITS.map((s) => input.shards[s].data as Uint8Array),
        count: total,
        shape: input.sourceShape,
        embedder: lazy.get,
        onProgress: (d) => {
          // Report against the split the d-th image belongs to.
          let i = 0;
          for (let j = 0; j < SPLITS.length; j++) if (counts[j] > 0 && starts[j] < d) i = j;
          input.onProgress?.(SPLITS[i], Math.min(counts[i], d - starts[i]), counts[i]);
        },
        onCacheError: input.onCacheError,
      });
      outcome = r.cache;
      images = { cached: r.cached, embedded: r.embedded };
      rawSize = r.size;
      SPLITS.forEach((s, i) => (raw[s] = r.x.subarray(starts[i] * rawSize, (starts[i] + counts[i]) * rawSize)));
    } else for (const s of SPLITS) raw[s] = new Float32Array(0);
    for (const split of SPLITS) {
      const shard = input.shards[split];
      const sel = input.select(shard);
      index[split] = sel.index;
      const rows = subsetRows(raw[split], rawSize, sel.index);
      if (top) {
        cutX[split] = rows;
        prepared[split] = {
          count: sel.index.length,
          targets: sel.targets,
          x: sel.index.length ? (await predictOutputs(top, rows, sel.index.length))[0] : new Float32Array(0),
        };
      } else {
        prepared[split] = { count: sel.index.length, targets: sel.targets, x: rows };
      }
    }
  } finally {
    lazy.dispose();
  }
  return {
    prepared,
    index,
    size: top ? size : rawSize,
    cache: outcome,
    images,
    ...(top ? { cutX } : {}),
  };
}

/** The extended model: the old one's layers plus the new heads (see continual.ts). */
export function buildContinualFor(jobBase: JobBase, spec: TrainSpec): Promise<LayersModel> {
  const from = jobBase.from!;
  return buildContinualModel({ old: from.old, merged: from.merged, trunkFrozen: from.trunkFrozen, dropout: spec.training.dropout, seed: spec.training.seed });
}

/** Static weight of each task: the spec's `weight`, 1 for a task the spec does not name (an old task kept by distillation). */
export function taskWeightsOf(spec: TrainSpec, heads: TaskHead[]): Record<string, number> {
  const weights = new Map(tasksOf(spec).map((t) => [t.name, t.weight]));
  return Object.fromEntries(heads.map((h) => [h.name, weights.get(h.name) ?? 1]));
}

/**
 * Trains an extended model. Trunk frozen: only new or widened heads change.
 * Trunk unfrozen: old heads learn their own earlier outputs on the new images
 * as soft targets (LwF), at fineTune.learningRate. Either way with the spec's
 * loss weighting and task weights, like any other job.
 */
export async function trainContinual(
  jobBase: JobBase,
  model: LayersModel,
  data: { train: Split; validation?: Split },
  spec: TrainSpec,
  onEpoch?: (epoch: number, logs: EpochLogs, checkpoint: TrainCheckpoint) => void | Promise<void>,
  trainer: typeof trainModel = trainModel,
  resume?: TrainCheckpoint,
): Promise<TrainResult> {
  const from = jobBase.from!;
  const distilled = from.trunkFrozen ? [] : from.merged.unchanged;
  const softOf = async (s: Split | undefined) => {
    if (!s || !distilled.length || s.count === 0) return undefined;
    const outs = await predictOutputs(from.old, s.x, s.count);
    return Object.fromEntries(distilled.map((name) => [name, outs[from.meta.tasks.findIndex((t) => t.name === name)]]));
  };
  return trainer(
    model,
    {
      train: { ...data.train, soft: await softOf(data.train) },
      validation: data.validation && data.validation.count ? { ...data.validation, soft: await softOf(data.validation) } : undefined,
    },
    {
      epochs: spec.training.epochs,
      batchSize: spec.training.batchSize,
      learningRate: from.trunkFrozen ? spec.training.learningRate : (spec.fineTune?.learningRate ?? spec.training.learningRate),
      patience: spec.training.patience,
      tasks: jobBase.heads,
      lossWeights: taskWeightsOf(spec, jobBase.heads),
      lossWeighting: spec.lossWeighting,
      seed: spec.training.seed,
      inferenceMode: true,
      resume,
      onEpoch: (epoch, logs, checkpoint) => onEpoch?.(epoch, logs, checkpoint),
    },
  );
}

/** What fine-tuning adds to the version report (schema in shared/schemas/metrics.ts). */
export type FineTuneReport = z.output<typeof FineTuneReportSchema>;

function testAccuracy(outputs: Float32Array[], heads: TaskHead[], split: Split): Record<string, number> {
  return Object.fromEntries(
    heads.flatMap((h, i) =>
      h.type === 'classification' && split.count ? [[h.name, accuracyOf(outputs[i], split.targets[h.name], split.count, h.labels!.length).accuracy]] : [],
    ),
  );
}

/**
 * Fine-tunes the top of the base with the trained heads on top: returns the
 * model to publish (input: flattened cut activations) and its test split.
 */
export async function fineTuneStage(input: {
  jobBase: JobBase;
  heads: LayersModel;
  tasks: TaskHead[];
  embedded: EmbeddedSplits;
  spec: TrainSpec;
  onEpoch?: (epoch: number, logs: Record<string, number>) => void | Promise<void>;
  /** @default trainModel */
  trainer?: typeof trainModel;
  /** Loaded into the fine-tuning model before its first epoch, saved after each (a retried job resumes). */
  checkpoint?: StageCheckpoint;
  log?: (line: string) => void;
}): Promise<{ model: LayersModel; test: Split; size: number; report: FineTuneReport }> {
  const ft = input.jobBase.fineTune!;
  const opts = input.spec.fineTune!;
  const { prepared, cutX } = input.embedded;
  const asCut = (s: SplitName): Split => ({ count: prepared[s].count, targets: prepared[s].targets, x: cutX![s] });
  const before = prepared.test.count ? testAccuracy(await predictOutputs(input.heads, prepared.test.x, prepared.test.count), input.tasks, prepared.test) : {};
  const model = await buildFineTuneModel({ graph: ft.graph, plan: ft.plan, embeddingLayer: ft.embeddingLayer, pooling: ft.pooling, heads: input.heads });
  try {
    const resume = await input.checkpoint?.load(model);
    if (resume) input.log?.(`resuming fine-tuning from the checkpoint after epoch ${resume.state.nextEpoch}`);
    const result = await (input.trainer ?? trainModel)(
      model,
      { train: asCut('train'), validation: prepared.validation.count ? asCut('validation') : undefined },
      {
        epochs: opts.epochs,
        learningRate: opts.learningRate,
        batchSize: input.spec.training.batchSize,
        patience: Math.min(3, opts.epochs),
        tasks: input.tasks,
        lossWeights: taskWeightsOf(input.spec, input.tasks),
        lossWeighting: input.spec.lossWeighting,
        seed: input.spec.training.seed,
        inferenceMode: true,
        divergenceHint: 'try a lower fineTune.learningRate',
        resume,
        onEpoch: async (epoch, logs, checkpoint) => {
          await input.checkpoint?.save(model, checkpoint);
          await input.onEpoch?.(epoch, logs);
        },
      },
    );
    const test = asCut('test');
    const after = test.count ? testAccuracy(await predictOutputs(model, test.x, test.count), input.tasks, test) : {};
    const size = model.inputs[0].shape[1] as number;
    return {
      model,
      test,
      size,
      report: {
        layers: ft.plan.trainable,
        cut: ft.plan.cutLayer,
        learningRate: opts.learningRate,
        epochsRun: result.epochsRun,
        history: result.history,
        ...(resume ? { resumedFromEpoch: resume.state.nextEpoch } : {}),
        test: Object.fromEntries(Object.keys(after).map((t) => [t, { before: before[t], after: after[t], difference: after[t] - before[t] }])),
      },
    };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

export interface OldTaskMetric {
  before: number;
  after: number;
  difference: number;
  count: number;
  /** The test split measured on: `<dataset>@<hash prefix>`. */
  dataset: string;
}

export type ContinualReport = {
  from: string;
  trunk: 'frozen' | 'distilled';
  added: string[];
  extended: string[];
  /** Each old classification task: test accuracy of the old version and of the new model on the test split of the data it was learned from. */
  tasks: Record<string, OldTaskMetric>;
  /** Old tasks that could not be measured, and why. */
  skipped?: Record<string, string>;
};

/** What a version's metrics say about the version it extended (older versions may say nothing). */
const ExtendedFromSchema = z.looseObject({ continual: z.looseObject({ from: z.string().optional() }).optional() });

/**
 * Each old task's test accuracy before (the old version) and after (the new
 * model), on the test split of the dataset that taught it: the old version's
 * own dataset, or for a task an earlier extension brought, the dataset of the
 * version it was extended from (following `from` back).
 */
export async function continualReport(store: ObjectStore, jobBase: JobBase, model: LayersModel): Promise<ContinualReport> {
  const from = jobBase.from!;
  const meta = from.meta;
  const result: ContinualReport = {
    from: `${meta.model}@${meta.version}`,
    trunk: from.trunkFrozen ? 'frozen' : 'distilled',
    added: from.merged.added,
    extended: Object.keys(from.merged.extended),
    tasks: {},
  };
  const missing = new Set(meta.tasks.filter((t) => t.type === 'classification').map((t) => t.name));
  const seen = new Set<string>();
  let hop: ModelMetadata | undefined = meta;
  while (hop && missing.size && !seen.has(`${hop.model}@${hop.version}`)) {
    seen.add(`${hop.model}@${hop.version}`);
    const name = `${hop.dataset.name}@${hop.dataset.hash.slice(0, 12)}`;
    try {
      const report = await readReport(store, `prepared/${hop.dataset.name}/${hop.dataset.hash}`);
      const test = await readSplit(store, report, 'test');
      const wanted = [...missing].filter((t) => test.records.some((r) => r.labels[t] !== null && r.labels[t] !== undefined));
      if (wanted.length && report.inputShape.length === 3) {
        const labels = Object.fromEntries(wanted.map((t) => [t, test.records.map((r) => r.labels[t])]));
        const images = { pixels: test.data as Uint8Array, count: test.records.length, shape: report.inputShape as ImageShape, labels };
        // Old and new model read the same embedder (the old version's base and cut).
        const { x } = await embedForBase(store, meta, images);
        const before = accuracyByTask(meta, await versionOutputs(store, meta, x, images.count), images.count, labels);
        const after = accuracyByTask({ tasks: jobBase.heads }, await predictOutputs(model, x, images.count), images.count, labels);
        for (const t of Object.keys(before)) {
          const a = after[t]?.accuracy ?? 0;
          result.tasks[t] = { before: before[t].accuracy, after: a, difference: a - before[t].accuracy, count: before[t].count, dataset: name };
          missing.delete(t);
        }
      }
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    // The version this one extended, pinned in its report when it was itself an extension.
    const previous: string | undefined = ExtendedFromSchema.safeParse(hop.metrics).data?.continual?.from ?? hop.spec.from;
    hop = previous ? await resolveFrom(store, previous).catch(() => undefined) : undefined;
  }
  if (missing.size)
    result.skipped = Object.fromEntries(
      [...missing].map((t) => [t, 'no stored test split with labels for this task (its prepared dataset may have been deleted)']),
    );
  return result;
}

/**
 * Starts the from-scratch baseline on the job's own split, every task kind: on a worker
 * thread when there is a second core (baseline-thread.ts), so it trains while the job
 * searches and trains; `baselineStage` collects it.
 */
export async function startBaselineRun(
  input: {
    store: ObjectStore;
    shards: Record<SplitName, Shard>;
    embedded: Pick<EmbeddedSplits, 'index' | 'prepared'>;
    sourceShape: ImageShape;
    /** The job's heads, regression ones with the train split's statistics. */
    heads: TaskHead[];
    seed: number;
    /** The job's epoch budget, so both models get the same schedule. @default 100 */
    epochs?: number;
  },
  log?: (line: string) => void,
): Promise<BaselineRun> {
  const per = input.sourceShape[0] * input.sourceShape[1] * input.sourceShape[2];
  const split = (s: SplitName) => {
    const data = input.shards[s].data as Uint8Array;
    const idx = input.embedded.index[s];
    // Every record labelled (the usual case): the shard's own pixels, not a copy.
    const every = idx.every((j, n) => j === n);
    const pixels = every ? data.subarray(0, idx.length * per) : new Uint8Array(idx.length * per);
    if (!every) idx.forEach((j, n) => pixels.set(data.subarray(j * per, (j + 1) * per), n * per));
    return { pixels, count: idx.length, targets: input.embedded.prepared[s].targets };
  };
  return startBaseline(
    {
      store: input.store,
      splits: { train: split('train'), validation: split('validation'), test: split('test') },
      sourceShape: input.sourceShape,
      heads: input.heads,
      seed: input.seed,
      epochs: input.epochs,
    },
    log,
  );
}

/** The started baseline's figures, compared with the transfer model's test figures. */
export async function baselineStage(
  run: BaselineRun,
  /** The transfer model's test figures per task (summaryMetrics): accuracy, micro/macro F1, R² and MAE. */
  transferTest: TransferFigures,
  /** The job's spec, to pick the verdict's advice. */
  spec?: Pick<TrainSpec, 'base' | 'fineTune' | 'from'>,
): Promise<{ result: BaselineResult; comparison: BaselineComparison } | undefined> {
  const result = await run.result;
  if (!result) return undefined;
  return { result, comparison: compareWithBaseline(transferTest, result, { base: spec?.base, fineTuned: Boolean(spec?.fineTune) }) };
}

/** Vector jobs' "does the network pay?": a linear model on the same standardised splits (fitLinearBaseline). */
export async function linearBaselineStage(input: {
  data: Record<SplitName, Split>;
  embeddingSize: number;
  heads: TaskHead[];
  seed: number;
  epochs?: number;
  transferTest: TransferFigures;
}): Promise<{ result: BaselineResult; comparison: BaselineComparison } | undefined> {
  const result = await fitLinearBaseline({
    splits: input.data,
    embeddingSize: input.embeddingSize,
    heads: input.heads,
    seed: input.seed,
    epochs: input.epochs,
  });
  if (!result) return undefined;
  return { result, comparison: compareWithBaseline(input.transferTest, result, { base: 'none', input: 'vector' }) };
}

/**
 * The gate: the serving version and the candidate are run on this job's test
 * split and on the serving version's own stored test split (each through its
 * own embedder), and compared task by task; for an extended model, old tasks
 * are also compared on the test splits that taught them. Nothing comparable
 * means no promotion (see decidePromotion).
 */
export async function promotionStage(input: {
  store: ObjectStore;
  model: string;
  spec: TrainSpec;
  heads: TaskHead[];
  /** The candidate's test figures per task (summaryMetrics): the gate reads accuracy, microF1 or r2 by task kind. */
  candidate: TransferFigures;
  test: Shard;
  sourceShape: number[];
  /** The candidate's input as its metadata will say (vector models: with their standardisation). @default built from sourceShape */
  inputSpec?: ModelMetadata['input'];
  /** The model about to be published and its job base: lets the gate run it on the serving version's test split. */
  served?: LayersModel;
  jobBase?: Pick<JobBase, 'baseName' | 'cut'>;
  /** This job's prepared dataset (the serving version's own split is skipped when it is the same). */
  dataset?: { name: string; hash: string };
  continual?: ContinualReport;
  log?: (line: string) => void;
}): Promise<PromotionDecision> {
  const { store, spec } = input;
  const current = await readAlias(store, input.model, 'latest');
  const margin = spec.promotion.margin;
  if (!current) return decidePromotion([], margin);
  const comparisons: MetricComparison[] = [];
  const notCompared: string[] = [];
  const meta = await readMetadata(store, input.model, current.version);
  if (!meta) return decidePromotion([], margin, current.version, { notCompared: `the metadata of ${current.version} is missing` });
  if (input.test.records.length === 0) notCompared.push('this job has no test records');
  else {
    try {
      const previous = await measureOn(store, publishedGateModel(store, meta), input.test, input.sourceShape);
      if (!previous) notCompared.push(`${input.model}@${current.version} cannot read this job's records`);
      for (const h of input.heads) {
        const metric = GATE_METRIC[h.type];
        const p = previous?.[h.name]?.metric === metric ? previous[h.name].value : undefined;
        const c = input.candidate[h.name]?.[metric];
        if (p !== undefined && c !== undefined)
          comparisons.push({ task: h.name, metric, previous: p, candidate: c, delta: c - p, on: 'test split of this job' });
      }
    } catch (err) {
      input.log?.(
        `promotion gate: could not run ${input.model}@${current.version} on the test split (${err instanceof Error ? err.message : String(err)}); comparing stored metrics`,
      );
      for (const h of input.heads) {
        const metric = GATE_METRIC[h.type];
        const p = TaskSummarySchema.safeParse(meta.metrics[h.name]).data?.[metric];
        const c = input.candidate[h.name]?.[metric];
        if (p !== undefined && c !== undefined)
          comparisons.push({ task: h.name, metric, previous: p, candidate: c, delta: c - p, on: 'own test splits (not the same records)' });
      }
    }
  }
  const sameData = input.dataset && input.dataset.name === meta.dataset.name && input.dataset.hash === meta.dataset.hash;
  if (!sameData) {
    if (input.served && input.jobBase) {
      const served = input.served;
      const shape = input.sourceShape;
      const candidate: GateModel = {
        tasks: input.heads,
        base: { name: input.jobBase.baseName, ...(input.jobBase.cut ? { cut: input.jobBase.cut } : {}) },
        input: input.inputSpec ?? ((shape.length === 3 ? { type: 'image', shape: [...shape] } : { type: 'vector', size: shape[0] }) as ModelMetadata['input']),
        outputs: (x, count) => predictOutputs(served, x, count),
      };
      const own = await compareOnServingTest(store, meta, candidate);
      comparisons.push(...own.comparisons);
      if (own.skipped) notCompared.push(own.skipped);
    } else notCompared.push(`the new version was not run on the test split of ${meta.dataset.name}`);
  }
  for (const [task, v] of Object.entries(input.continual?.tasks ?? {}))
    comparisons.push({ task, metric: 'accuracy', previous: v.before, candidate: v.after, delta: v.difference, on: `test split of ${v.dataset}` });
  return decidePromotion(comparisons, margin, current.version, {
    notCompared: notCompared.join('; ') || undefined,
    unmeasurable: meta.tasks.length === 0 && input.heads.length === 0,
    lostClasses: lostClasses(meta.tasks, input.heads),
  });
}
