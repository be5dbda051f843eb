/**
 * Few-shot: a nearest-class-mean classifier on the base embeddings (Snell,
 * Swersky & Zemel 2017 call the class means prototypes). Each class is the
 * normalised mean of its examples' unit embeddings; an input scores by cosine
 * similarity to each prototype, turned into probabilities by a softmax over
 * `scale`·cosine. No training: 1 to 20 examples per class are enough to publish.
 */
import { z } from 'zod';
import { getJson, putJson, type ObjectStore } from '../ports/object-store.js';

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
function classSums<S extends Float32Array | Float64Array>(
  unit: Float32Array,
  count: number,
  size: number,
  targets: ArrayLike<number>,
  sums: S,
): { sums: S; examples: number[] } {
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
export function buildPrototypes(
  x: Float32Array,
  count: number,
  size: number,
  targets: ArrayLike<number>,
  k: number,
): { prototypes: Float32Array; examples: number[] } {
  const { sums, examples } = classSums(normalizeRows(x, count, size), count, size, targets, new Float32Array(k * size));
  return { prototypes: normalizeRows(sums, k, size), examples };
}

/** count×k probabilities: softmax over scale·cos(input, prototype). */
export function prototypeScores(
  x: Float32Array,
  count: number,
  size: number,
  prototypes: Float32Array,
  k: number,
  scale = DEFAULT_PROTOTYPE_SCALE,
): Float32Array {
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
