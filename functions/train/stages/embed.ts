/**
 * Stage `embed`: the frozen base runs once per record, here, through the embedding
 * cache; everything after reads only these arrays. The embedder comes in through
 * the deps (images in, embeddings out), so another engine plugs in here.
 */
import type { Shard } from '../../../shared/data/shards.js';
import type { ImageShape } from '../../../shared/ml/embedder.js';
import { fitFeatureScaling, standardiseFeatures } from '../../../shared/ml/features.js';
import { withTargetStatistics } from '../../../shared/ml/mtl-evaluate.js';
import { SPLITS, subsetRows, type Split } from '../../../shared/ml/split.js';
import { countLabelled, isLabelled, selectTargets, taskKind, type TaskTargets } from '../../../shared/ml/task-kinds.js';
import { embedJobSplits, startBaselineRun } from '../../../shared/ml/transfer-job.js';
import { cutLabel, embedCandidateCuts } from '../../../shared/ml/candidates.js';
import type { Cut } from '../../../shared/schemas/base-model.js';
import { engineOf } from '../../../shared/ml/onnx/runtime.js';
import type { TaskHead } from '../../../shared/schemas/model.js';
import type { SplitName } from '../../../shared/schemas/report.js';
import { tasksOf } from '../../../shared/schemas/spec.js';
import type { EmbeddedJob, LoadedJob, StageDeps } from '../context.js';
import { NoTrainLabelsError, TrainingInputError } from '../errors.js';
import { PROGRESS } from '../progress.js';

export async function embed(ctx: LoadedJob, deps: StageDeps): Promise<EmbeddedJob> {
  const plan = searchPlanOf(ctx);
  const { data, embeddingSize, embedded, engine, inputSpec, candidates } =
    ctx.inputSpec.type === 'vector'
      ? { ...vectorSplits(ctx, ctx.inputSpec.size), candidates: undefined }
      : { ...(await imageSplits(ctx, deps, 'cuts' in plan ? plan.cuts : undefined)), inputSpec: ctx.inputSpec };
  if (data.train.count < 2)
    throw new TrainingInputError(`the train split has ${data.train.count} labelled record${data.train.count === 1 ? '' : 's'}; add more data`);
  checkTrainLabels(
    ctx.heads,
    tasksOf(ctx.spec).map((t) => t.name),
    data,
  );
  // Regression heads are standardised with the train split's mean and std (stored in the head).
  const heads = withTargetStatistics(ctx.heads, data.train);
  // The baseline needs only the labelled records and their pixels: it trains from here on, beside search and training.
  const baselineRun = embedded
    ? await startBaselineRun(
        {
          store: deps.store,
          shards: ctx.shards,
          embedded,
          sourceShape: ctx.report.inputShape as ImageShape,
          heads,
          seed: ctx.spec.training.seed,
          epochs: ctx.spec.training.epochs,
        },
        deps.log,
      )
    : undefined;
  if (baselineRun) deps.defer(() => baselineRun.stop());
  return {
    ...ctx,
    heads,
    data,
    embeddingSize,
    embedded,
    engine,
    inputSpec,
    candidates,
    baselineRun,
    ...('skipped' in plan ? { searchSkipped: plan.skipped } : {}),
  };
}

/**
 * Whether the representation search (stage `search`) runs, and over which cuts of the
 * base: the job's own first, then the descriptor's `search.candidates`, or for a
 * `model:` base every layer from its input to its trunk's output (the raw pixels are
 * added by the search stage). It runs for a heads-only job on a pretrained or `model:`
 * base with such candidates, when every main task is single-label
 * classification (the search scores with a multinomial logistic model) and the spec
 * neither turns it off nor pins a cut.
 */
export function searchPlanOf(ctx: Pick<LoadedJob, 'spec' | 'plan' | 'jobBase' | 'heads' | 'inputSpec'>): { cuts: Cut[] } | { skipped: string } {
  const { spec, jobBase } = ctx;
  if (spec.training.search === 'off') return { skipped: 'training.search is "off"' };
  if (ctx.inputSpec.type !== 'image') return { skipped: 'vector inputs are their own representation' };
  if (spec.cut) return { skipped: `the spec pins its cut (${cutLabel(spec.cut)})` };
  if (ctx.plan.name !== 'heads') return { skipped: `a ${ctx.plan.name} job keeps its base's cut` };
  const base = jobBase.base;
  if (base.kind === 'none') return { skipped: 'base "none" has no cuts to choose from' };
  // A pretrained base lists its candidates; a model trained here offers every layer from its input (its own base's features) to its trunk's output.
  const others: Cut[] =
    base.kind === 'pretrained' ? (base.descriptor.search?.candidates ?? []) : (base.path ?? []).map((layer) => ({ layer, pooling: 'none' as const }));
  if (others.length === 0) return { skipped: `base "${jobBase.baseName}" lists no search candidates` };
  const main = ctx.heads.filter((h) => !h.auxiliary);
  if (main.some((h) => h.type !== 'classification'))
    return { skipped: 'the search scores single-label classification tasks; this spec has a multilabel or regression main task' };
  const own: Cut =
    jobBase.cut ??
    (base.kind === 'pretrained'
      ? { layer: base.descriptor.embedding.layer, pooling: base.descriptor.embedding.pooling }
      : { layer: base.layer, pooling: 'none' });
  const same = (a: Cut, b: Cut) => a.layer === b.layer && a.pooling === b.pooling;
  if (others.every((c) => same(c, own))) return { skipped: `base "${jobBase.baseName}" has no other layer to try` };
  return { cuts: [own, ...others.filter((c) => !same(c, own))] };
}

/**
 * Vectors are their own embeddings, standardised with the train split's statistics
 * (fitted on its labelled records, the ones it trains on; see shared/ml/features.ts),
 * which go into the model's input spec; only the labelled records are kept.
 */
function vectorSplits(ctx: LoadedJob, size: number): Pick<EmbeddedJob, 'data' | 'embeddingSize' | 'embedded' | 'engine' | 'inputSpec'> {
  const raw = {} as Record<SplitName, Split>;
  for (const split of SPLITS) {
    const shard = ctx.shards[split];
    const sel = selectLabelled(shard, ctx.heads);
    const x = shard.data instanceof Float32Array ? shard.data : Float32Array.from(shard.data);
    raw[split] = { count: sel.index.length, targets: sel.targets, x: subsetRows(x, size, sel.index) };
  }
  const scaling = fitFeatureScaling(raw.train.x, raw.train.count, size);
  const data = Object.fromEntries(SPLITS.map((s) => [s, { ...raw[s], x: standardiseFeatures(raw[s].x, size, scaling) }])) as Record<SplitName, Split>;
  return { data, embeddingSize: size, inputSpec: { type: 'vector', size, ...scaling } };
}

async function imageSplits(
  ctx: LoadedJob,
  deps: StageDeps,
  cuts: Cut[] | undefined,
): Promise<Pick<EmbeddedJob, 'data' | 'embeddingSize' | 'embedded' | 'engine' | 'candidates'>> {
  const { shards, jobBase } = ctx;
  const total = SPLITS.reduce((a, s) => a + shards[s].records.length, 0);
  const offset = { train: 0, validation: shards.train.records.length, test: shards.train.records.length + shards.validation.records.length };
  // Through the embedding cache: a job on the same images skips the base's forward pass.
  const common: Omit<Parameters<typeof embedJobSplits>[0], 'embedder'> = {
    store: deps.store,
    jobBase,
    shards,
    sourceShape: ctx.report.inputShape as ImageShape,
    select: (shard) => selectLabelled(shard, ctx.heads),
    onCacheError: (err) => deps.log(`embedding cache unavailable (${err instanceof Error ? err.message : String(err)}); embedding without it`),
    onProgress: (split, n, count) => {
      deps.progress.tick({ progress: PROGRESS.loaded + ((PROGRESS.embedded - PROGRESS.loaded) * (offset[split] + n)) / Math.max(1, total) });
      deps.log(`embedding ${split}: ${n}/${count}`);
    },
  };
  const all = cuts ? await embedCandidateCuts({ ...common, cuts, embedder: deps.embedder }) : [await embedJobSplits({ ...common, embedder: deps.embedder })];
  const embedded = all[0];
  const candidates = cuts?.map((cut, i) => ({ name: cutLabel(cut), cut, embedded: all[i] }));
  if (cuts) deps.log(`search candidates embedded from one pass: ${cuts.map(cutLabel).join(', ')}`);
  await deps.progress.update({ embeddingCache: embedded.cache });
  deps.log(
    `embedding cache: ${embedded.cache}, ${embedded.images.cached} images cached, ${embedded.images.embedded} embedded (base ${jobBase.baseName}${jobBase.cut ? ` cut at ${jobBase.cut.layer}` : ''})`,
  );
  // After embedding: a base whose export failed is known by now to keep tfjs.
  return { data: embedded.prepared, embeddingSize: embedded.size, embedded, engine: await engineOf(jobBase.base.name), candidates };
}

/** Records with a label for at least one task; a record without any teaches nothing. */
function selectLabelled(shard: Shard, heads: TaskHead[]): { index: number[]; targets: Record<string, TaskTargets> } {
  const all = Object.fromEntries(
    heads.map((h) => [
      h.name,
      taskKind(h.type).encodeLabels(
        shard.records.map((r) => r.labels[h.name]),
        h,
      ),
    ]),
  );
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
function checkTrainLabels(heads: TaskHead[], declared: string[], data: Record<SplitName, Split>): void {
  for (const h of heads) {
    if (!declared.includes(h.name)) continue;
    const counts = Object.fromEntries(SPLITS.map((s) => [s, countLabelled(data[s].targets[h.name], data[s].count)]));
    if (counts.train > 0) continue;
    throw new NoTrainLabelsError(
      `${h.auxiliary ? 'auxiliary ' : ''}task "${h.name}" has no labelled record in the train split (labelled: ${SPLITS.map((s) => `${s} ${counts[s]}`).join(', ')}); label some train records or remove the task`,
    );
  }
}
