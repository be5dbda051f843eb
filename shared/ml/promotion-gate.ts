/**
 * Measurements for the promotion gate: the serving version and a candidate run
 * on the same labelled records, through each one's own embedder.
 *
 * Two sets of records count: the new job's test split (what the candidate was
 * trained for) and the serving version's own stored test split (what users of
 * `latest` rely on today). The second catches a candidate trained on a dataset
 * without test records, on wrong labels, or with classes missing.
 */
import { standardiseFeatures } from './features.js';
import type { Shard } from '../data/shards.js';
import { readReport, readSplit } from '../data/shards.js';
import type { MetricComparison } from '../models/promotion.js';
import { NotFoundError, type ObjectStore } from '../ports/object-store.js';
import type { ModelMetadata, TaskHead } from '../schemas/model.js';
import { embedForBase } from './embedding-cache.js';
import type { ImageShape } from './embedder.js';
import { gateFiguresByTask, versionOutputs, type GateFigure, type LabelledImages } from './evaluate.js';

/** A model the gate can run: the serving version, or a candidate not yet published. */
export interface GateModel {
  /** Tasks in output order. */
  tasks: TaskHead[];
  /** Its embedder: base and cut, as in metadata.base. */
  base: ModelMetadata['base'];
  input: ModelMetadata['input'];
  /** Outputs (one count×units array per task) for embeddings of its embedder. */
  outputs(x: Float32Array, count: number): Promise<Float32Array[]>;
}

/** A published version as a GateModel (its stored model or prototypes). */
export function publishedGateModel(store: ObjectStore, meta: ModelMetadata): GateModel {
  return { tasks: meta.tasks, base: meta.base, input: meta.input, outputs: (x, count) => versionOutputs(store, meta, x, count) };
}

/** The gate figure per task (accuracy, micro-F1 or R²; see gateFiguresByTask). */
export type GateFigures = Record<string, GateFigure>;

/**
 * The gate figure of every task of `model` on a shard (records without a label
 * skipped; classes the model does not know count as errors).
 * @returns undefined when the model cannot read these records (images vs vectors, vector size).
 */
export async function measureOn(store: ObjectStore, model: GateModel, shard: Shard, shape: readonly number[]): Promise<GateFigures | undefined> {
  const count = shard.records.length;
  if (count === 0) return undefined;
  let x: Float32Array;
  if (model.input.type === 'image' && shard.data instanceof Uint8Array && shape.length === 3) {
    x = (await embedForBase(store, model, { pixels: shard.data, count, shape: shape as ImageShape })).x;
  } else if (model.input.type === 'vector' && shard.data instanceof Float32Array && shape.length === 1 && shape[0] === model.input.size) {
    // Shards hold raw features; each model reads them through its own train statistics.
    x = standardiseFeatures(shard.data, shape[0], model.input);
  } else return undefined;
  const labels: LabelledImages['labels'] = Object.fromEntries(model.tasks.map((t) => [t.name, shard.records.map((r) => r.labels[t.name])]));
  return gateFiguresByTask(model, await model.outputs(x, count), count, labels);
}

/**
 * Serving version against candidate on the same records, for every task the
 * serving version could be measured on, by the same figure. A task the candidate
 * lacks scores 0 (it can no longer answer it); a task whose kind changed is skipped.
 */
export function compareAccuracies(serving: GateFigures, candidate: GateFigures | undefined, candidateTasks: TaskHead[], on: string): MetricComparison[] {
  const out: MetricComparison[] = [];
  for (const [task, p] of Object.entries(serving)) {
    const head = candidateTasks.find((t) => t.name === task);
    const got = candidate?.[task];
    if (head && got?.metric !== p.metric) continue;
    const c = head ? got?.value : 0;
    if (c === undefined) continue;
    out.push({
      task,
      metric: p.metric,
      previous: p.value,
      candidate: c,
      delta: c - p.value,
      on: head ? on : `${on}; the new version has no task "${task}"`,
    });
  }
  return out;
}

/**
 * Both models on the serving version's own stored test split
 * (`prepared/<dataset>/<hash>`, as recorded in its metadata).
 * @returns the comparisons, or why there are none.
 */
export async function compareOnServingTest(
  store: ObjectStore,
  serving: ModelMetadata,
  candidate: GateModel,
): Promise<{ comparisons: MetricComparison[]; skipped?: string }> {
  const where = `${serving.dataset.name}@${serving.dataset.hash.slice(0, 12)}`;
  let shard: Shard;
  let shape: number[];
  try {
    const report = await readReport(store, `prepared/${serving.dataset.name}/${serving.dataset.hash}`);
    shard = await readSplit(store, report, 'test');
    shape = report.inputShape;
  } catch (err) {
    if (err instanceof NotFoundError)
      return { comparisons: [], skipped: `the test split of ${serving.model}@${serving.version} (${where}) is no longer stored` };
    throw err;
  }
  if (shard.records.length === 0) return { comparisons: [], skipped: `${serving.model}@${serving.version} has no test records (${where})` };
  const previous = await measureOn(store, publishedGateModel(store, serving), shard, shape);
  if (!previous || Object.keys(previous).length === 0)
    return { comparisons: [], skipped: `no task of ${serving.model}@${serving.version} could be measured on its test split (${where})` };
  const next = await measureOn(store, candidate, shard, shape);
  if (!next) return { comparisons: [], skipped: `the new version cannot read the records of ${where}` };
  return { comparisons: compareAccuracies(previous, next, candidate.tasks, `test split of ${where}`) };
}

/** Classes of the serving version's classification tasks that the candidate no longer has (task missing = all its classes). */
export function lostClasses(serving: TaskHead[], candidate: TaskHead[]): Record<string, string[]> {
  const lost: Record<string, string[]> = {};
  for (const s of serving) {
    if (s.type !== 'classification' || s.auxiliary) continue;
    const c = candidate.find((t) => t.name === s.name);
    const missing = (s.labels ?? []).filter((l) => !c?.labels?.includes(l));
    if (missing.length) lost[s.name] = missing;
  }
  return lost;
}
