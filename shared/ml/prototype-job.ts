/**
 * The few-shot job: publishes a prototype model (prototype-classifier.ts) from a
 * prepared dataset without a training job, through the same promotion gate as a
 * trained version.
 */
import { engineOf } from './onnx/runtime.js';
import { readSplit } from '../data/shards.js';
import { applyPromotion, decidePromotion, type PromotionDecision } from '../models/promotion.js';
import { newVersionId, readAlias, readMetadata, versionPrefix as versionPrefixOf, writeMetadata } from '../models/registry.js';
import type { ObjectStore } from '../ports/object-store.js';
import type { ModelMetadata, TaskHead } from '../schemas/model.js';
import type { BaseModelDescriptor, Cut } from '../schemas/base-model.js';
import type { DatasetReport, SplitName } from '../schemas/report.js';
import { tasksOf } from '../schemas/spec.js';
import { resolveBase } from './base-models.js';
import { UserError } from '../errors.js';
import type { ImageShape } from './embedder.js';
import { embedForBase, type CacheOutcome } from './embedding-cache.js';
import { describeCut } from './cuts.js';
import { compareOnServingTest, lostClasses, type GateModel } from './promotion-gate.js';
import { buildPrototypes, DEFAULT_PROTOTYPE_SCALE, leaveOneOutAccuracy, savePrototypes, scorePrototypes } from './prototype-classifier.js';

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
  const acceptUnmeasured =
    serving.kind === 'prototype'
      ? `${current.version} is a prototype model too, with no held-out test records, and every class it predicts is kept`
      : undefined;
  return decidePromotion(own.comparisons, margin, current.version, {
    notCompared: own.skipped,
    lostClasses: lostClasses(serving.tasks, candidate.tasks),
    acceptUnmeasured,
  });
}

/** What the cut search of a prototype model found: every candidate's leave-one-out accuracy, and the one chosen and why. */
export interface CutSearch {
  chosen: string;
  by: 'leave-one-out' | 'fallback';
  reason: string;
  candidates: Array<{ cut: string; size: number; leaveOneOutAccuracy?: number }>;
}

const cutName = (cut: Cut | undefined) => (cut ? describeCut(cut, ' (avg pooled)') : 'embedding layer');

/**
 * Where the base is cut for prototypes. A base whose descriptor names few-shot
 * candidates has each tried (the embedding layer first): with two or more examples of
 * every class, the cut with the best leave-one-out accuracy (mean over the main tasks)
 * wins, ties going to the earlier candidate; with a single example somewhere,
 * leave-one-out cannot measure anything and the descriptor's fallback is used.
 */
async function chooseCut(
  store: ObjectStore,
  baseName: string,
  fewShot: BaseModelDescriptor['fewShot'],
  images: { pixels: Uint8Array; count: number; shape: ImageShape },
  tasks: Array<{ targets: Int32Array; classes: number }>,
): Promise<{ cut?: Cut; x: Float32Array; size: number; cache: CacheOutcome; cutSearch?: CutSearch }> {
  const embed = async (cut: Cut | undefined) => ({ cut, ...(await embedForBase(store, { base: { name: baseName, ...(cut ? { cut } : {}) } }, images)) });
  if (!fewShot || (!fewShot.candidates.length && !fewShot.fallback)) return embed(undefined);
  const loo = (e: { x: Float32Array; size: number }) => {
    const accs = tasks.map((t) => leaveOneOutAccuracy(e.x, images.count, e.size, t.targets, t.classes));
    return accs.every((a) => a !== undefined) ? accs.reduce((a, b) => a + b, 0) / accs.length : undefined;
  };
  const first = await embed(undefined);
  if (loo(first) === undefined) {
    const chosen = fewShot.fallback ? await embed(fewShot.fallback) : first;
    return {
      ...chosen,
      cutSearch: {
        chosen: cutName(chosen.cut),
        by: 'fallback',
        reason: 'a class has a single example, so leave-one-out cannot compare cuts: the cut measured best for nearest-class-mean is used',
        candidates: [{ cut: cutName(chosen.cut), size: chosen.size }],
      },
    };
  }
  const tried = [{ ...first, accuracy: loo(first)! }];
  for (const c of fewShot.candidates) {
    const e = await embed(c);
    tried.push({ ...e, accuracy: loo(e)! });
  }
  const best = tried.reduce((a, b) => (b.accuracy > a.accuracy + 1e-12 ? b : a));
  return {
    ...best,
    cutSearch: {
      chosen: cutName(best.cut),
      by: 'leave-one-out',
      reason: `leave-one-out accuracy ${best.accuracy.toFixed(3)}, the best of ${tried.length} cuts`,
      candidates: tried.map((t) => ({ cut: cutName(t.cut), size: t.size, leaveOneOutAccuracy: t.accuracy })),
    },
  };
}

/** A prototype model cannot be built from this dataset (the uploader can fix it). */
/** Few-shot means few: the design's range is 1 to 20 examples per class. */
export const MAX_PROTOTYPE_EXAMPLES = 20;

export class PrototypeInputError extends UserError {
  override name = 'PrototypeInputError';
  constructor(message: string) {
    super('INVALID_SPEC', message);
  }
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
  embeddingCache: CacheOutcome;
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
    pixels.set(s.data, at * per);
    at += s.records.length;
  }
  // A `model:` base is pinned to its version here, so the prototypes always meet the same embedder.
  const resolved = await resolveBase(store, spec.base);
  const baseName = resolved.name;
  const records = shards.flatMap((s) => s.records);
  const targetsOf = (h: TaskHead) => {
    const index = new Map(h.labels!.map((l, i) => [l, i]));
    return Int32Array.from(records, (r) => {
      const v = r.labels[h.name];
      return typeof v === 'string' && index.has(v) ? index.get(v)! : -1;
    });
  };
  const { cut, x, size, cache, cutSearch } = await chooseCut(
    store,
    baseName,
    resolved.kind === 'pretrained' ? resolved.descriptor.fewShot : undefined,
    { pixels, count, shape },
    heads.filter((h) => !h.auxiliary).map((h) => ({ targets: targetsOf(h), classes: h.labels!.length })),
  );
  const engine = await engineOf(baseName);

  const metrics: Record<string, unknown> = cutSearch ? { cutSearch } : {};
  const tasks = heads.map((h) => {
    const targets = targetsOf(h);
    const built = buildPrototypes(x, count, size, targets, h.labels!.length);
    const loo = leaveOneOutAccuracy(x, count, size, targets, h.labels!.length);
    metrics[h.name] = { examples: built.examples.reduce((a, b) => a + b, 0), ...(loo !== undefined ? { leaveOneOutAccuracy: loo } : {}) };
    return {
      name: h.name,
      labels: h.labels!,
      prototypes: Array.from({ length: h.labels!.length }, (_, c) => Array.from(built.prototypes.subarray(c * size, (c + 1) * size))),
      examples: built.examples,
    };
  });

  const createdAt = (input.now ?? (() => new Date()))();
  const version = newVersionId(createdAt);
  const prefix = versionPrefixOf(model, version);
  await savePrototypes(store, prefix, { scale: DEFAULT_PROTOTYPE_SCALE, embeddingSize: size, tasks });
  const promotion = await gatePrototype(
    store,
    model,
    {
      tasks: heads,
      base: { name: baseName, embeddingSize: size, ...(cut ? { cut } : {}) },
      input: { type: 'image', shape: [...shape] as [number, number, number] },
      outputs: async (xs, n) => scorePrototypes({ scale: DEFAULT_PROTOTYPE_SCALE, embeddingSize: size, tasks }, xs, n),
    },
    spec.promotion.margin,
  );
  metrics.promotion = promotion;
  const metadata: ModelMetadata = {
    model,
    version,
    createdAt: createdAt.toISOString(),
    kind: 'prototype',
    input: { type: 'image', shape: [...shape] as [number, number, number] },
    base: { name: baseName, embeddingSize: size, ...(cut ? { cut } : {}), engine },
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
