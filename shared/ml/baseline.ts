/**
 * Does transfer help? A cheap from-scratch baseline fitted on the same split as
 * every training job: a small dense network (one hidden layer of 128) on the
 * images downsampled to 32×32 pixels. Features learned on other data can be
 * worse than none, and this is how a user finds out.
 */
import type { ObjectStore } from '../ports/object-store.js';
import type { TaskHead } from '../schemas/model.js';
import { loadEmbedder, type ImageShape } from './embedder.js';
import { predictOutputs } from './fine-tune.js';
import { buildHeadModel } from './heads.js';
import type { TaskTargets } from './task-kinds.js';
import { trainHeads } from './train.js';

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
  heads: TaskHead[];
  /** @default 42 */
  seed?: number;
  /** Upper bound; early stopping on the validation loss usually ends sooner. @default 100 */
  epochs?: number;
}

export interface BaselineResult {
  method: string;
  /** Test accuracy per classification task. */
  test: Record<string, { accuracy: number; count: number }>;
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
 * Fits the baseline on the classification tasks and returns its test accuracy.
 * @returns undefined when no task is a classification task.
 */
export async function fitBaseline(input: FitBaselineInput): Promise<BaselineResult | undefined> {
  const started = performance.now();
  const heads = input.heads.filter((h) => h.type === 'classification');
  if (heads.length === 0) return undefined;
  const embedder = await loadEmbedder(input.store, { kind: 'none', name: 'none', inputShape: [BASELINE_SIZE, BASELINE_SIZE, input.sourceShape[2]] });
  const x = async (s: BaselineSplit) => (s.count ? embedder.embed(s.pixels, s.count, { sourceShape: input.sourceShape }) : new Float32Array(0));
  const [train, validation, test] = [await x(input.splits.train), await x(input.splits.validation), await x(input.splits.test)];
  const targets = (s: BaselineSplit) => Object.fromEntries(heads.map((h) => [h.name, s.targets[h.name]]));
  const model = await buildHeadModel({ embeddingSize: embedder.size, tasks: heads, sharing: { method: 'hard', trunk: [128] }, dropout: 0.2, seed: input.seed ?? 42 });
  try {
    const result = await trainHeads(
      model,
      {
        train: { x: train, count: input.splits.train.count, targets: targets(input.splits.train) },
        validation: input.splits.validation.count ? { x: validation, count: input.splits.validation.count, targets: targets(input.splits.validation) } : undefined,
      },
      { epochs: input.epochs ?? 100, batchSize: 32, learningRate: 0.001, patience: 10, taskTypes: Object.fromEntries(heads.map((h) => [h.name, h.type])) },
    );
    const outs = input.splits.test.count ? await predictOutputs(model, test, input.splits.test.count) : [];
    const metrics = Object.fromEntries(
      heads.flatMap((h, i) => (outs[i] ? [[h.name, accuracyOf(outs[i], input.splits.test.targets[h.name], input.splits.test.count, h.labels!.length)]] : [])),
    );
    return { method: BASELINE_METHOD, test: metrics, epochsRun: result.epochsRun, ms: Math.round(performance.now() - started) };
  } finally {
    model.dispose();
    embedder.dispose();
  }
}

export interface BaselineComparison {
  method: string;
  /** Per task: the two test accuracies and transfer − baseline. */
  tasks: Record<string, { transfer: number; baseline: number; difference: number }>;
  /** True when the baseline is better on any task: transfer did not pay there. */
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
}

/** Differences within half a point of accuracy are a tie. */
const TIE = 0.005;

function adviceFor(ctx: BaselineContext): string {
  if (ctx.base === 'none') return 'The job used base "none" (no pretrained features); try a pretrained base such as "mobilenet_v2", or more data.';
  if (ctx.fineTuned) return 'The base\'s features do not help this dataset even fine-tuned; try another base, fine-tuning fewer or more layers, or more data.';
  return 'The base\'s features do not help this dataset; try another base, fine-tuning ("fineTune"), or more data.';
}

/** Compares the transfer model's test accuracy with the baseline's, task by task: wins, ties (within half a point) or loses. */
export function compareWithBaseline(transfer: Record<string, { accuracy?: number } | undefined>, baseline: BaselineResult, ctx: BaselineContext = {}): BaselineComparison {
  const tasks: BaselineComparison['tasks'] = {};
  for (const [name, b] of Object.entries(baseline.test)) {
    const t = transfer[name]?.accuracy;
    if (t === undefined || b.count === 0) continue;
    tasks[name] = { transfer: t, baseline: b.accuracy, difference: t - b.accuracy };
  }
  const entries = Object.entries(tasks);
  const losing = entries.filter(([, v]) => v.difference < -TIE);
  const winning = entries.filter(([, v]) => v.difference > TIE);
  const pts = (x: number) => `${(Math.abs(x) * 100).toFixed(1)} points`;
  const on = (n: string) => `${baseline.test[n].count} test record${baseline.test[n].count === 1 ? '' : 's'}`;
  const line = ([n, v]: [string, { transfer: number; baseline: number; difference: number }]) => `task "${n}" ${v.transfer.toFixed(3)} vs ${v.baseline.toFixed(3)} (${v.difference >= 0 ? '+' : '−'}${pts(v.difference)}, ${on(n)})`;
  let verdict: string;
  if (entries.length === 0) verdict = 'Transfer learning and the from-scratch baseline were not compared: no task has test records for both.';
  else if (losing.length) verdict = `The from-scratch baseline beats transfer learning: ${losing.map(([n, v]) => `on task "${n}" it reaches ${v.baseline.toFixed(3)} test accuracy against ${v.transfer.toFixed(3)} (${pts(v.difference)} better, ${on(n)})`).join('; ')}. ${adviceFor(ctx)}`;
  else if (winning.length) verdict = `Transfer learning beats the from-scratch baseline: ${entries.map(line).join('; ')}.`;
  else verdict = `Transfer learning ties with the from-scratch baseline (within 0.5 points): ${entries.map(line).join('; ')}.`;
  return { method: baseline.method, tasks, baselineWins: losing.length > 0, verdict };
}
