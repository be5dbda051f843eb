/**
 * Stage `search`: which representation the model reads, measured on this job's own
 * records (shared/ml/search.ts). The candidates are the cuts the embed stage computed
 * from one forward pass, and the raw pixels of `base: "none"`; the winner replaces the
 * job's data, base and cut before anything trains, so every later stage (training, the
 * evaluation on the untouched test split, the baseline, the gate, the published
 * metadata) sees one representation. A single-task job then refits the winning linear
 * configuration on train + validation (plans.ts); a multi-task job trains its spec's
 * model on the winner.
 */
import { resolveBase, NONE_INPUT_SHAPE } from '../../../shared/ml/base-models.js';
import type { ImageShape } from '../../../shared/ml/embedder.js';
import { searchRepresentations, type SearchCandidate, type SearchTask } from '../../../shared/ml/search.js';
import { embedJobSplits, type EmbeddedSplits, type JobBase } from '../../../shared/ml/transfer-job.js';
import { engineOf } from '../../../shared/ml/onnx/runtime.js';
import { SPLITS } from '../../../shared/ml/split.js';
import type { EmbeddedJob, SearchedJob, StageDeps } from '../context.js';

/** Search budget when the spec sets none: a minute per 1,000 pooled records (the issue's "a minute of CPU for 1,000 images"), at least 15 s. */
export const searchBudgetMs = (records: number, seconds?: number) => 1000 * (seconds ?? Math.max(15, (60 * records) / 1000));

/** train then validation rows of one representation: the pool the folds are drawn from. */
const poolOf = (e: EmbeddedSplits) => {
  const { train, validation } = e.prepared;
  const x = new Float32Array(train.x.length + validation.x.length);
  x.set(train.x);
  x.set(validation.x, train.x.length);
  return x;
};

export async function search(ctx: EmbeddedJob, deps: StageDeps): Promise<SearchedJob> {
  if (!ctx.candidates) {
    if (ctx.searchSkipped) deps.log(`representation search skipped: ${ctx.searchSkipped}`);
    return ctx;
  }
  const main = ctx.heads.filter((h) => !h.auxiliary);
  const { train, validation } = ctx.data;
  const tasks: SearchTask[] = main.map((h) => {
    const labels = new Int32Array(train.count + validation.count);
    labels.set(train.targets[h.name] as Int32Array);
    labels.set(validation.targets[h.name] as Int32Array, train.count);
    return { name: h.name, classes: h.labels?.length ?? 0, labels };
  });
  const tooFew = tasks.flatMap((t) => {
    const counts = new Map<number, number>();
    for (const y of t.labels) if (y >= 0) counts.set(y, (counts.get(y) ?? 0) + 1);
    const thin = [...counts].filter(([, n]) => n < 2).map(([c]) => main.find((h) => h.name === t.name)?.labels?.[c]);
    return counts.size < 2 || thin.length ? [`task "${t.name}"${thin.length ? ` class ${thin.join(', ')}` : ''}`] : [];
  });
  if (tooFew.length) {
    const why = `cross-validation needs two train or validation records of every class (${tooFew.join('; ')})`;
    deps.log(`representation search skipped: ${why}`);
    return { ...ctx, searchSkipped: why };
  }

  // The raw pixels, as a base "none" job would read them: embedded only if the budget reaches them.
  const noneBase = await resolveBase(deps.store, 'none');
  const pixelJobBase: JobBase = { base: noneBase, heads: ctx.jobBase.heads, baseName: 'none', dispose: () => {} };
  let pixels: EmbeddedSplits | undefined;
  const own = ctx.embedded!;
  const candidates: SearchCandidate[] = [
    ...ctx.candidates.map((c) => ({ name: c.name, size: c.embedded.size, x: poolOf(c.embedded) })),
    {
      name: `pixels ${NONE_INPUT_SHAPE.join('×')}`,
      size: NONE_INPUT_SHAPE[0] * NONE_INPUT_SHAPE[1] * NONE_INPUT_SHAPE[2],
      x: async () => {
        pixels = await embedJobSplits({
          store: deps.store,
          jobBase: pixelJobBase,
          shards: ctx.shards,
          sourceShape: ctx.report.inputShape as ImageShape,
          // The same labelled records, with the same targets, as the job's own splits.
          select: (shard) => {
            const split = SPLITS.find((s) => ctx.shards[s] === shard)!;
            return { index: own.index[split], targets: own.prepared[split].targets };
          },
          embedder: deps.embedder,
        });
        return poolOf(pixels);
      },
    },
  ];
  const records = train.count + validation.count;
  const result = await searchRepresentations({
    candidates,
    tasks,
    seed: ctx.spec.training.seed,
    budgetMs: searchBudgetMs(records, ctx.spec.training.searchBudgetSeconds),
    log: deps.log,
  });
  deps.log(`representation search: ${result.report.chosen} chosen; ${result.report.verdict}`);
  const single = ctx.heads.length === 1;
  const report = {
    ...result.report,
    model: single
      ? 'the winning linear model refitted on train + validation (λ from the folds); the test split is used once, for the report and the gate'
      : 'the spec’s multi-task model trained on the winning representation',
  };
  await deps.progress.update({ search: report });
  const linearRefit = single ? { l2: result.l2 } : undefined;
  if (result.chosen === 0) return { ...ctx, search: report, linearRefit };
  const isPixels = result.chosen === ctx.candidates.length;
  const chosen = isPixels ? pixels! : ctx.candidates[result.chosen].embedded;
  const jobBase: JobBase = isPixels ? pixelJobBase : { ...ctx.jobBase, cut: ctx.candidates[result.chosen].cut };
  return {
    ...ctx,
    jobBase,
    data: chosen.prepared,
    embeddingSize: chosen.size,
    embedded: chosen,
    engine: await engineOf(jobBase.base.name),
    search: report,
    linearRefit,
  };
}
