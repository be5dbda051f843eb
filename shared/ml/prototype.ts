/**
 * Few-shot: a nearest-class-mean classifier on the base embeddings (Snell,
 * Swersky & Zemel 2017 call the class means prototypes). Each class is the
 * normalised mean of its examples' unit embeddings; an input scores by cosine
 * similarity to each prototype, turned into probabilities by a softmax over
 * `scale`·cosine. No training: 1 to 20 examples per class are enough to publish.
 */
import { z } from 'zod';
import { readSplit } from '../data/shards.js';
import { applyPromotion, decidePromotion, type PromotionDecision } from '../models/promotion.js';
import { newVersionId, readAlias, readMetadata, versionPrefix as versionPrefixOf, writeMetadata } from '../models/registry.js';
import { getJson, putJson, type ObjectStore } from '../ports/object-store.js';
import type { ModelMetadata, TaskHead } from '../schemas/model.js';
import type { DatasetReport, SplitName } from '../schemas/report.js';
import { tasksOf } from '../schemas/spec.js';
import { resolveBase } from './base-models.js';
import type { ImageShape } from './embedder.js';
import { embedForBase } from './embedding-cache.js';
import { compareOnServingTest, lostClasses, type GateModel } from './promotion-gate.js';

export const PROTOTYPES_FILE = 'prototypes.json';

/**
 * Softmax temperature of the cosine similarities. Cosines of one input to
 * different prototypes differ by a few hundredths to a few tenths; ×10 makes a
 * clear winner score well above the rest while near ties stay near.
 * @default 10
 */
export const DEFAULT_PROTOTYPE_SCALE = 10;

export const PrototypesSchema = z.strictObject({
  scale: z.number().positive(),
  embeddingSize: z.number().int().positive(),
  tasks: z.array(
    z.strictObject({
      name: z.string(),
      labels: z.array(z.string()).min(1),
      /** One unit vector per label, in label order. */
      prototypes: z.array(z.array(z.number())),
      /** Examples behind each prototype. */
      examples: z.array(z.number().int()),
    }),
  ),
});
export type Prototypes = z.infer<typeof PrototypesSchema>;

function normalizeRows(x: Float32Array, count: number, size: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < count; i++) {
    let n = 0;
    for (let j = 0; j < size; j++) n += x[i * size + j] ** 2;
    const inv = 1 / (Math.sqrt(n) || 1);
    for (let j = 0; j < size; j++) out[i * size + j] = x[i * size + j] * inv;
  }
  return out;
}

/** Adds each labelled row into its class's row of `sums`; counts the rows per class. */
function classSums<S extends Float32Array | Float64Array>(unit: Float32Array, count: number, size: number, targets: ArrayLike<number>, sums: S): { sums: S; examples: number[] } {
  const examples = new Array<number>(sums.length / size).fill(0);
  for (let i = 0; i < count; i++) {
    const c = targets[i];
    if (c < 0) continue;
    examples[c]++;
    for (let j = 0; j < size; j++) sums[c * size + j] += unit[i * size + j];
  }
  return { sums, examples };
}

/**
 * Class prototypes: per class, the normalised mean of its examples' unit embeddings.
 * @param targets class index per record, -1 = no label
 * @returns k×size unit vectors and the examples per class
 */
export function buildPrototypes(x: Float32Array, count: number, size: number, targets: ArrayLike<number>, k: number): { prototypes: Float32Array; examples: number[] } {
  const { sums, examples } = classSums(normalizeRows(x, count, size), count, size, targets, new Float32Array(k * size));
  return { prototypes: normalizeRows(sums, k, size), examples };
}

/** count×k probabilities: softmax over scale·cos(input, prototype). */
export function prototypeScores(x: Float32Array, count: number, size: number, prototypes: Float32Array, k: number, scale = DEFAULT_PROTOTYPE_SCALE): Float32Array {
  const unit = normalizeRows(x, count, size);
  const out = new Float32Array(count * k);
  for (let i = 0; i < count; i++) {
    let max = -Infinity;
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let j = 0; j < size; j++) s += unit[i * size + j] * prototypes[c * size + j];
      out[i * k + c] = scale * s;
      max = Math.max(max, scale * s);
    }
    let sum = 0;
    for (let c = 0; c < k; c++) sum += out[i * k + c] = Math.exp(out[i * k + c] - max);
    for (let c = 0; c < k; c++) out[i * k + c] /= sum;
  }
  return out;
}

/**
 * Leave-one-out accuracy: each example classified by prototypes built without
 * it. A fair estimate from the few examples there are; undefined when a class
 * has a single example (leaving it out leaves the class empty).
 */
export function leaveOneOutAccuracy(x: Float32Array, count: number, size: number, targets: ArrayLike<number>, k: number): number | undefined {
  const unit = normalizeRows(x, count, size);
  // Float64: each left-out example is subtracted from these sums again.
  const { sums, examples } = classSums(unit, count, size, targets, new Float64Array(k * size));
  if (examples.some((n) => n < 2)) return undefined;
  let correct = 0;
  let n = 0;
  for (let i = 0; i < count; i++) {
    const t = targets[i];
    if (t < 0) continue;
    let best = -1;
    let bestScore = -Infinity;
    for (let c = 0; c < k; c++) {
      // cosine with the mean of the other examples (the direction of their sum)
      let dot = 0;
      let norm = 0;
      for (let j = 0; j < size; j++) {
        const m = sums[c * size + j] - (c === t ? unit[i * size + j] : 0);
        dot += m * unit[i * size + j];
        norm += m * m;
      }
      const s = dot / (Math.sqrt(norm) || 1);
      if (s > bestScore) [best, bestScore] = [c, s];
    }
    n++;
    if (best === t) correct++;
  }
  return n ? correct / n : undefined;
}

export const prototypesKey = (versionPrefix: string) => `${versionPrefix}/${PROTOTYPES_FILE}`;

export async function savePrototypes(store: ObjectStore, versionPrefix: string, p: Prototypes): Promise<void> {
  await putJson(store, prototypesKey(versionPrefix), PrototypesSchema.parse(p));
}

export async function loadPrototypes(store: ObjectStore, versionPrefix: string): Promise<Prototypes> {
  return PrototypesSchema.parse(await getJson(store, prototypesKey(versionPrefix)));
}

/** Scores of every task for count×size embeddings, in the order of `p.tasks`. */
export function scorePrototypes(p: Prototypes, x: Float32Array, count: number): Float32Array[] {
  return p.tasks.map((t) => prototypeScores(x, count, p.embeddingSize, Float32Array.from(t.prototypes.flat()), t.labels.length, p.scale));
}

/**
 * The gate for a prototype version: it and the serving version run on the
 * serving version's own test split (a prototype has no held-out split of its
 * own: every example is a prototype). Nothing measurable refuses, naming the
 * classes the prototype would drop.
 */
async function gatePrototype(store: ObjectStore, model: string, candidate: GateModel, margin: number): Promise<PromotionDecision> {
  const current = await readAlias(store, model, 'latest');
  if (!current) return decidePromotion([], margin);
  const serving = await readMetadata(store, model, current.version);
  if (!serving) return decidePromotion([], margin, current.version, { notCompared: `the metadata of ${current.version} is missing`, lostClasses: {} });
  const own = await compareOnServingTest(store, serving, candidate);
  // Prototype over prototype: neither has held-out records (every example is a prototype), so keeping every class is all that can be asked.
  const acceptUnmeasured = serving.kind === 'prototype' ? `${current.version} is a prototype model too, with no held-out test records, and every class it predicts is kept` : undefined;
  return decidePromotion(own.comparisons, margin, current.version, { notCompared: own.skipped, lostClasses: lostClasses(serving.tasks, candidate.tasks), acceptUnmeasured });
}

/** A prototype model cannot be built from this dataset (the uploader can fix it). */
/** Few-shot means few: the design's range is 1 to 20 examples per class. */
export const MAX_PROTOTYPE_EXAMPLES = 20;

export class PrototypeInputError extends Error {
  override name = 'PrototypeInputError';
}

export interface PublishPrototypeInput {
  store: ObjectStore;
  report: DatasetReport;
  jobId?: string;
  /** @default () => new Date() */
  now?: () => Date;
}

export interface PublishPrototypeResult {
  model: string;
  version: string;
  metadata: ModelMetadata;
  promotion: PromotionDecision;
  embeddingCache: 'hit' | 'miss';
}

/**
 * Publishes a prototype model from a prepared dataset, every split used as
 * examples (there is nothing to train, and with 1-20 examples per class every one
 * counts): embeddings of the base, one prototype per class, `prototypes.json`
 * and metadata.json in a new version, then the alias.
 * @throws PrototypeInputError for a task that is not a classification task.
 */
export async function publishPrototypeModel(input: PublishPrototypeInput): Promise<PublishPrototypeResult> {
  const { store, report } = input;
  const spec = report.spec;
  const model = spec.model ?? report.dataset;
  if (spec.input.type !== 'image' || report.inputShape.length !== 3) throw new PrototypeInputError('mode "prototype" needs image inputs');
  const heads: TaskHead[] = tasksOf(spec).map((t) => {
    if (t.type !== 'classification') throw new PrototypeInputError(`mode "prototype" supports classification tasks only; task "${t.name}" is ${t.type}`);
    const labels = Object.keys(report.tasks[t.name]?.classes ?? {}).sort();
    if (labels.length < 2) throw new PrototypeInputError(`task "${t.name}" needs at least 2 classes, the dataset has ${labels.length}`);
    // Prototypes are computed inside the preprocess function (no job), so the data
    // must stay few-shot sized; more examples are better served by a trained head.
    const crowded = Object.entries(report.tasks[t.name]?.classes ?? {}).filter(([, n]) => n > MAX_PROTOTYPE_EXAMPLES);
    if (crowded.length) {
      throw new PrototypeInputError(
        `mode "prototype" takes 1 to ${MAX_PROTOTYPE_EXAMPLES} examples per class; ${crowded.map(([c, n]) => `"${c}" has ${n}`).join(', ')} in task "${t.name}": use mode "train" for this much data`,
      );
    }
    return { name: t.name, type: 'classification', auxiliary: t.auxiliary, labels };
  });
  const shape = report.inputShape as ImageShape;
  const per = shape[0] * shape[1] * shape[2];
  const shards = await Promise.all((['train', 'validation', 'test'] as SplitName[]).map((s) => readSplit(store, report, s)));
  const count = shards.reduce((a, s) => a + s.records.length, 0);
  const pixels = new Uint8Array(count * per);
  let at = 0;
  for (const s of shards) {
    pixels.set(s.data as Uint8Array, at * per);
    at += s.records.length;
  }
  const records = shards.flatMap((s) => s.records);
  // A `model:` base is pinned to its version here, so the prototypes always meet the same embedder.
  const baseName = (await resolveBase(store, spec.base)).name;
  const { x, size, cache } = await embedForBase(store, { base: { name: baseName } }, { pixels, count, shape });

  const metrics: Record<string, unknown> = {};
  const tasks = heads.map((h) => {
    const index = new Map(h.labels!.map((l, i) => [l, i]));
    const targets = Int32Array.from(records, (r) => {
      const v = r.labels[h.name];
      return typeof v === 'string' && index.has(v) ? index.get(v)! : -1;
    });
    const built = buildPrototypes(x, count, size, targets, h.labels!.length);
    const loo = leaveOneOutAccuracy(x, count, size, targets, h.labels!.length);
    metrics[h.name] = { examples: built.examples.reduce((a, b) => a + b, 0), ...(loo !== undefined ? { leaveOneOutAccuracy: loo } : {}) };
    return { name: h.name, labels: h.labels!, prototypes: Array.from({ length: h.labels!.length }, (_, c) => Array.from(built.prototypes.subarray(c * size, (c + 1) * size))), examples: built.examples };
  });

  const createdAt = (input.now ?? (() => new Date()))();
  const version = newVersionId(createdAt);
  const prefix = versionPrefixOf(model, version);
  await savePrototypes(store, prefix, { scale: DEFAULT_PROTOTYPE_SCALE, embeddingSize: size, tasks });
  const promotion = await gatePrototype(store, model, { tasks: heads, base: { name: baseName, embeddingSize: size }, input: { type: 'image', shape: [...shape] as [number, number, number] }, outputs: async (xs, n) => scorePrototypes({ scale: DEFAULT_PROTOTYPE_SCALE, embeddingSize: size, tasks }, xs, n) }, spec.promotion.margin);
  metrics.promotion = promotion;
  const metadata: ModelMetadata = {
    model,
    version,
    createdAt: createdAt.toISOString(),
    kind: 'prototype',
    input: { type: 'image', shape: [...shape] as [number, number, number] },
    base: { name: baseName, embeddingSize: size },
    tasks: heads,
    dataset: { name: report.dataset, hash: report.hash },
    spec,
    ...(input.jobId ? { jobId: input.jobId } : {}),
    metrics,
  };
  await writeMetadata(store, metadata);
  await applyPromotion(store, model, version, promotion);
  return { model, version, metadata, promotion, embeddingCache: cache };
}
