/**
 * Does transfer help? A cheap from-scratch baseline fitted on the same split as
 * every training job: a small dense network (one hidden layer of 128) on the
 * images downsampled to 32×32 pixels, with a head per task of every kind
 * (softmax classes, sigmoid labels with thresholds tuned on the validation split as
 * the job tunes its own, standardised regression). Regression tasks are also set
 * against predicting the train mean: a model that cannot beat that learned nothing.
 * Features learned on other data can be worse than none, and this is how a user finds out.
 */
import type { ObjectStore } from '../ports/object-store.js';
import type { TaskHead } from '../schemas/model.js';
import { loadEmbedder, type ImageShape } from './embedder.js';
import { buildHeadModel } from './architectures.js';
import { regressionMetrics } from './metrics.js';
import { evaluateTasks, tuneThresholds } from './mtl-evaluate.js';
import type { Split } from './split.js';
import { isLabelled, regressionSize, type TaskTargets } from './task-kinds.js';
import { trainModel } from './train.js';

export const BASELINE_METHOD = 'dense network (128 hidden units) on 32×32 downsampled pixels, trained from scratch';
const BASELINE_SIZE = 32;

export interface BaselineSplit {
  /** count×sourceShape uint8 images. */
  pixels: Uint8Array;
  count: number;
  targets: Record<string, TaskTargets>;
}

export interface FitBaselineInput {
  store: ObjectStore;
  splits: { train: BaselineSplit; validation: BaselineSplit; test: BaselineSplit };
  sourceShape: ImageShape;
  /** The job's heads; regression heads carry the train split's mean and std (withTargetStatistics). */
  heads: TaskHead[];
  /** @default 42 */
  seed?: number;
  /** Upper bound; early stopping on the validation loss usually ends sooner. @default 100 */
  epochs?: number;
}

/** R² and MAE in real units (R² null with fewer than 2 records). */
export interface RegressionFigures {
  r2: number | null;
  mae: number;
}

/** The baseline's test figures of one task, by task kind (a classification entry written before kinds were told apart has no `type`). */
export type BaselineTaskResult =
  | { type?: 'classification'; accuracy: number; count: number }
  | { type: 'multilabel'; microF1: number; macroF1: number; count: number }
  | ({ type: 'regression'; count: number; trainMean: RegressionFigures } & RegressionFigures);

export interface BaselineResult {
  method: string;
  /** Test figures per task that has labelled test records. */
  test: Record<string, BaselineTaskResult>;
  epochsRun: number;
  ms: number;
}

/** Accuracy of count×k outputs against class indices (-1 skipped). */
export function accuracyOf(outputs: Float32Array, targets: ArrayLike<number>, count: number, k: number): { accuracy: number; count: number } {
  let n = 0;
  let correct = 0;
  for (let i = 0; i < count; i++) {
    if (targets[i] < 0) continue;
    let best = 0;
    for (let c = 1; c < k; c++) if (outputs[i * k + c] > outputs[i * k + best]) best = c;
    n++;
    if (best === targets[i]) correct++;
  }
  return { accuracy: n ? correct / n : 0, count: n };
}

/**
 * R² and MAE of always answering the train split's mean (the head's `mean`, set
 * from the train split before training) on the labelled test records.
 */
export function trainMeanFigures(head: TaskHead, targets: TaskTargets, count: number): RegressionFigures {
  const size = regressionSize(head);
  const mean = head.mean ?? new Array<number>(size).fill(0);
  const truth: number[] = [];
  for (let i = 0; i < count; i++) if (isLabelled(targets, count, i)) truth.push(...Array.from(targets.subarray(i * size, (i + 1) * size)));
  const predicted = truth.map((_, j) => mean[j % size]);
  const m = regressionMetrics(truth, predicted, size);
  return { r2: m.r2, mae: m.mae };
}

/**
 * Fits the baseline on every task and returns its test figures: accuracy,
 * micro/macro F1, or R² and MAE (with the train mean's beside them).
 * @returns undefined when there is no task.
 */
export async function fitBaseline(input: FitBaselineInput): Promise<BaselineResult | undefined> {
  const started = performance.now();
  const features = await baselineFeatures(input);
  return features && fitBaselineOnFeatures(features, input, started);
}

/** The baseline's inputs: every split's images downsampled to 32×32 and scaled to [0, 1]; undefined when there is no task. */
export interface BaselineFeatures {
  size: number;
  splits: { train: Split; validation: Split; test: Split };
}

/** The first half of fitBaseline (a few milliseconds): what the network reads. */
export async function baselineFeatures(input: FitBaselineInput): Promise<BaselineFeatures | undefined> {
  const heads = input.heads;
  if (heads.length === 0) return undefined;
  const embedder = await loadEmbedder(input.store, { kind: 'none', name: 'none', inputShape: [BASELINE_SIZE, BASELINE_SIZE, input.sourceShape[2]] });
  try {
    const split = async (s: BaselineSplit): Promise<Split> => ({
      x: s.count ? await embedder.embed(s.pixels, s.count, { sourceShape: input.sourceShape }) : new Float32Array(0),
      count: s.count,
      targets: Object.fromEntries(heads.map((h) => [h.name, s.targets[h.name]])),
    });
    return {
      size: embedder.size,
      splits: { train: await split(input.splits.train), validation: await split(input.splits.validation), test: await split(input.splits.test) },
    };
  } finally {
    embedder.dispose();
  }
}

/**
 * The second half of fitBaseline (seconds: the training), which a worker thread can run
 * (baseline-thread.ts): its inputs are plain arrays.
 * @param started when the baseline began (performance.now() of the caller's thread), for `ms`
 */
export function fitBaselineOnFeatures(
  features: BaselineFeatures,
  input: { heads: TaskHead[]; seed?: number; epochs?: number },
  started = performance.now(),
): Promise<BaselineResult> {
  return fitAndEvaluate({ embeddingSize: features.size, trunk: [128], dropout: 0.2, method: BASELINE_METHOD, started }, input, features.splits);
}

export const LINEAR_BASELINE_METHOD = 'linear model on the standardised features (one softmax, sigmoid or linear output per task)';

export interface FitLinearBaselineInput {
  /** The job's splits as its model reads them: standardised features (shared/ml/features.ts). */
  splits: { train: Split; validation: Split; test: Split };
  embeddingSize: number;
  /** The job's heads; regression heads carry the train split's mean and std. */
  heads: TaskHead[];
  /** @default 42 */
  seed?: number;
  /** @default 100 */
  epochs?: number;
}

/**
 * The baseline of vector (tabular) data: what a practitioner fits first, a linear
 * model per task (multinomial logistic regression, per-label logistic regression,
 * linear regression) on the same standardised features and split, trained by the
 * same loop with early stopping. A network that cannot beat it is not worth its
 * hidden layers.
 * @returns undefined when there is no task.
 */
export async function fitLinearBaseline(input: FitLinearBaselineInput): Promise<BaselineResult | undefined> {
  if (input.heads.length === 0) return undefined;
  return fitAndEvaluate(
    { embeddingSize: input.embeddingSize, trunk: [], dropout: 0, method: LINEAR_BASELINE_METHOD, started: performance.now() },
    input,
    input.splits,
  );
}

/** Builds the baseline's model, trains it with early stopping, tunes thresholds on validation and measures on test. */
async function fitAndEvaluate(
  arch: { embeddingSize: number; trunk: number[]; dropout: number; method: string; started: number },
  input: { heads: TaskHead[]; seed?: number; epochs?: number },
  splits: { train: Split; validation: Split; test: Split },
): Promise<BaselineResult> {
  const { heads } = input;
  const { train, validation, test } = splits;
  const model = await buildHeadModel({
    embeddingSize: arch.embeddingSize,
    tasks: heads,
    sharing: { method: 'hard', trunk: arch.trunk },
    dropout: arch.dropout,
    seed: input.seed ?? 42,
  });
  try {
    const result = await trainModel(
      model,
      { train, validation: validation.count ? validation : undefined },
      { epochs: input.epochs ?? 100, batchSize: 32, learningRate: arch.trunk.length ? 0.001 : 0.01, patience: 10, tasks: heads },
    );
    // Thresholds tuned on the validation split, as the job tunes its own: the comparison is like for like.
    const tuned = await tuneThresholds(model, heads, validation.count ? validation : undefined);
    const evaluation = await evaluateTasks(model, tuned, test);
    const metrics: Record<string, BaselineTaskResult> = {};
    for (const h of tuned) {
      const m = evaluation[h.name];
      if (!m) continue;
      if (m.type === 'classification') metrics[h.name] = { type: 'classification', accuracy: m.accuracy, count: m.count };
      else if (m.type === 'multilabel') metrics[h.name] = { type: 'multilabel', microF1: m.microF1, macroF1: m.macroF1, count: m.count };
      else metrics[h.name] = { type: 'regression', r2: m.r2, mae: m.mae, count: m.count, trainMean: trainMeanFigures(h, test.targets[h.name], test.count) };
    }
    return { method: arch.method, test: metrics, epochsRun: result.epochsRun, ms: Math.round(performance.now() - arch.started) };
  } finally {
    model.dispose();
  }
}

/** One figure of a task for the transfer model and the baseline; difference = transfer − baseline. */
export interface FigurePair {
  transfer: number;
  baseline: number;
  difference: number;
}

/** One task compared: its headline figure (what decides), every figure compared, and for regression the train mean. */
export interface TaskBaselineComparison extends FigurePair {
  /** accuracy (classification), microF1 (multilabel), r2 (regression; mae when R² cannot be computed). */
  metric: string;
  higherIsBetter: boolean;
  /** Every figure compared, the headline one included: macroF1 beside microF1, mae beside r2. */
  figures: Record<string, FigurePair>;
  /** Regression: the figures of always predicting the train mean, and whether the transfer model beats it. */
  trainMean?: RegressionFigures & { beaten: boolean };
  /** Who is better by the headline figure (within the tie band: tie). */
  better: 'transfer' | 'baseline' | 'tie';
}

export interface BaselineComparison {
  method: string;
  /** Per task with test records on both sides. */
  tasks: Record<string, TaskBaselineComparison>;
  /** True when the baseline is better on any task, or a regression task does no better than its train mean: transfer did not pay there. */
  baselineWins: boolean;
  /** One plain sentence for the report and the model's metrics. */
  verdict: string;
}

/** What the job did, to pick advice that applies to it. */
export interface BaselineContext {
  /** The spec's base (`none`, a pretrained name, `model:…`). */
  base?: string;
  /** The job already fine-tuned the base. @default false */
  fineTuned?: boolean;
  /** Vector data: the job's own network against a linear model, no transfer involved. @default "image" */
  input?: 'image' | 'vector';
}

/** Differences within half a point (of accuracy, F1 or R²; of MAE, within 0.5 % of the baseline's) are a tie. */
const TIE = 0.005;

function adviceFor(ctx: BaselineContext): string {
  if (ctx.input === 'vector')
    return 'A linear model is enough for these features; try sharing {"method": "hard", "trunk": []} (linear heads), a smaller trunk, or more data.';
  if (ctx.base === 'none') return 'The job used base "none" (no pretrained features); try a pretrained base such as "mobilenet_v2", or more data.';
  if (ctx.fineTuned) return "The base's features do not help this dataset even fine-tuned; try another base, fine-tuning fewer or more layers, or more data.";
  return 'The base\'s features do not help this dataset; try another base, fine-tuning ("fineTune"), or more data.';
}

/** The transfer model's test figures per task as the job summarises them (summaryMetrics): accuracy, microF1, macroF1, r2, mae, … */
export type TransferFigures = Record<string, Partial<Record<string, number>> | undefined>;

const pair = (transfer: number, baseline: number): FigurePair => ({ transfer, baseline, difference: transfer - baseline });

/** Which side a difference favours: a tie within the band. */
function betterOf(p: FigurePair, metric: string, higherIsBetter: boolean): TaskBaselineComparison['better'] {
  const band = metric === 'mae' ? TIE * Math.abs(p.baseline) : TIE;
  const gain = higherIsBetter ? p.difference : -p.difference;
  return gain > band ? 'transfer' : gain < -band ? 'baseline' : 'tie';
}

/** One task compared, or undefined when the transfer side lacks the figures. */
function compareTask(t: Partial<Record<string, number>>, b: BaselineTaskResult): TaskBaselineComparison | undefined {
  const figures: Record<string, FigurePair> = {};
  const add = (name: string, tv: number | undefined, bv: number | null | undefined) => {
    if (tv !== undefined && bv !== undefined && bv !== null) figures[name] = pair(tv, bv);
  };
  let metric: string;
  let trainMean: TaskBaselineComparison['trainMean'];
  if (b.type === 'multilabel') {
    add('microF1', t.microF1, b.microF1);
    add('macroF1', t.macroF1, b.macroF1);
    metric = 'microF1';
  } else if (b.type === 'regression') {
    add('r2', t.r2, b.r2);
    add('mae', t.mae, b.mae);
    metric = figures.r2 ? 'r2' : 'mae';
    if (t.mae !== undefined) {
      const useR2 = t.r2 !== undefined && b.trainMean.r2 !== null;
      const vsMean = useR2 ? pair(t.r2!, b.trainMean.r2!) : pair(t.mae, b.trainMean.mae);
      trainMean = { ...b.trainMean, beaten: betterOf(vsMean, useR2 ? 'r2' : 'mae', useR2) === 'transfer' };
    }
  } else {
    add('accuracy', t.accuracy, b.accuracy);
    metric = 'accuracy';
  }
  const headline = figures[metric];
  if (!headline) return undefined;
  const higherIsBetter = metric !== 'mae';
  return { metric, higherIsBetter, ...headline, figures, ...(trainMean ? { trainMean } : {}), better: betterOf(headline, metric, higherIsBetter) };
}

const LABEL: Record<string, string> = { accuracy: 'accuracy', microF1: 'micro-F1', macroF1: 'macro-F1', r2: 'R²', mae: 'MAE' };
/** Accuracy and F1 read in points; R² and MAE as numbers (MAE in the task's units). */
const diff = (metric: string, d: number) =>
  metric === 'r2' || metric === 'mae' ? `${d >= 0 ? '+' : '−'}${Math.abs(d).toFixed(3)}` : `${d >= 0 ? '+' : '−'}${(Math.abs(d) * 100).toFixed(1)} points`;
const fmt = (x: number | null) => (x === null ? 'n/a' : x.toFixed(3));

/** The figures of one task, e.g. `task "tags" micro-F1 0.800 vs 0.700 (+10.0 points), macro-F1 …, 9 test records`. */
function describeTask(name: string, c: TaskBaselineComparison, count: number): string {
  const figures = Object.entries(c.figures).map(([m, p]) => `${LABEL[m] ?? m} ${fmt(p.transfer)} vs ${fmt(p.baseline)} (${diff(m, p.difference)})`);
  const mean = c.trainMean ? `; predicting the train mean: R² ${fmt(c.trainMean.r2)}, MAE ${fmt(c.trainMean.mae)}` : '';
  return `task "${name}" ${figures.join(', ')}, ${count} test record${count === 1 ? '' : 's'}${mean}`;
}

/**
 * Compares the transfer model's test figures with the baseline's, task by task and
 * for every task kind: wins, ties (within half a point) or loses by the headline
 * figure; a regression task that does no better than its train mean counts as lost.
 */
export function compareWithBaseline(transfer: TransferFigures, baseline: BaselineResult, ctx: BaselineContext = {}): BaselineComparison {
  const tasks: BaselineComparison['tasks'] = {};
  for (const [name, b] of Object.entries(baseline.test)) {
    const t = transfer[name];
    if (!t || b.count === 0) continue;
    const c = compareTask(t, b);
    if (c) tasks[name] = c;
  }
  const entries = Object.entries(tasks);
  const count = (n: string) => baseline.test[n].count;
  const losing = entries.filter(([, v]) => v.better === 'baseline');
  const belowMean = entries.filter(([, v]) => v.trainMean && !v.trainMean.beaten);
  const winning = entries.filter(([, v]) => v.better === 'transfer');
  const lines = entries.map(([n, v]) => describeTask(n, v, count(n))).join('; ');
  // Vector data has no transfer: the job's network is set against a linear model.
  const vector = ctx.input === 'vector';
  const ours = vector ? "the job's model" : 'transfer learning';
  const Ours = vector ? "The job's model" : 'Transfer learning';
  const theirs = vector ? 'the linear baseline' : 'the from-scratch baseline';
  const Theirs = vector ? 'The linear baseline' : 'The from-scratch baseline';
  let verdict: string;
  if (entries.length === 0) verdict = `${Ours} and ${theirs} were not compared: no task has test records for both.`;
  else if (losing.length || belowMean.length) {
    const parts = [
      ...losing.map(
        ([n, v]) =>
          `on task "${n}" ${theirs} reaches ${LABEL[v.metric]} ${fmt(v.baseline)} against ${fmt(v.transfer)} (${diff(v.metric, -v.difference)} for the baseline, ${count(n)} test records)`,
      ),
      ...belowMean.map(
        ([n, v]) =>
          `on task "${n}" ${ours} does no better than predicting the train mean (R² ${fmt(v.figures.r2?.transfer ?? null)} vs ${fmt(v.trainMean!.r2)}, MAE ${fmt(v.figures.mae?.transfer ?? null)} vs ${fmt(v.trainMean!.mae)})`,
      ),
    ];
    const head = losing.length ? `${Theirs} beats ${ours}` : vector ? "The job's model does not pay" : 'Transfer learning does not pay';
    verdict = `${head}: ${parts.join('; ')}. ${adviceFor(ctx)} All figures (${vector ? 'model' : 'transfer'} vs baseline): ${lines}.`;
  } else if (winning.length) verdict = `${Ours} beats ${theirs}: ${lines}.`;
  else verdict = `${Ours} ties with ${theirs} (within 0.5 points): ${lines}.`;
  return { method: baseline.method, tasks, baselineWins: losing.length > 0 || belowMean.length > 0, verdict };
}
