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
import { chooseRefitL2, L2_REPEATS, searchRepresentations, type SearchCandidate, type SearchReport, type SearchTask } from '../../../shared/ml/search.js';
import { buildHeadModel } from '../../../shared/ml/architectures.js';
import { accuracyOf } from '../../../shared/ml/baseline.js';
import { foldSplit, stratifiedFolds } from '../../../shared/ml/folds.js';
import { predictOutputs } from '../../../shared/ml/inference.js';
import { embedJobSplits, type EmbeddedSplits, type JobBase } from '../../../shared/ml/transfer-job.js';
import { engineOf } from '../../../shared/ml/onnx/runtime.js';
import { concatSplits, SPLITS } from '../../../shared/ml/split.js';
import type { EmbeddedJob, SearchedJob, StageDeps } from '../context.js';

/**
 * Search budget when the spec sets none: 30 s per 1,000 pooled records, at least 10 s.
 * The search runs on one core (tfjs wasm, L-BFGS in JS), so this is a minute of the two
 * cores' time per 1,000 images; measured, the linear part takes 4–6 s at 300–430 records.
 */
export const searchBudgetMs = (records: number, seconds?: number) => 1000 * (seconds ?? Math.max(10, (30 * records) / 1000));

/** Folds of the hidden family: each trains a network for up to the spec's epochs, so fewer than the linear family's. */
const HIDDEN_FOLDS = 3;

/** train then validation rows of one representation: the pool the folds are drawn from. */
const poolOf = (e: Pick<EmbeddedSplits, 'prepared' | 'size'>) => concatSplits(e.prepared.train, e.prepared.validation, e.size).x;

export async function search(ctx: EmbeddedJob, deps: StageDeps): Promise<SearchedJob> {
  // Vector data is its own representation: for one classification task the head family is still searched.
  const vectorFamily =
    ctx.inputSpec.type === 'vector' &&
    ctx.spec.training.search === 'auto' &&
    ctx.plan.name === 'heads' &&
    ctx.heads.length === 1 &&
    ctx.heads[0].type === 'classification';
  if (!ctx.candidates && !vectorFamily) {
    if (ctx.searchSkipped) deps.log(`representation search skipped: ${ctx.searchSkipped}`);
    return ctx;
  }
  const searchStarted = performance.now();
  const main = ctx.heads.filter((h) => !h.auxiliary);
  const { train, validation } = ctx.data;
  const pooled = concatSplits(train, validation, ctx.embeddingSize);
  const tasks: SearchTask[] = main.map((h) => ({ name: h.name, classes: h.labels?.length ?? 0, labels: pooled.targets[h.name] as Int32Array }));
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
  const cuts = ctx.candidates ?? [];
  const candidates: SearchCandidate[] = vectorFamily
    ? [{ name: 'standardised features', size: ctx.embeddingSize, x: pooled.x }]
    : [
        ...cuts.map((c) => ({ name: c.name, size: c.embedded.size, x: poolOf(c.embedded) })),
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
  const budgetMs = searchBudgetMs(records, ctx.spec.training.searchBudgetSeconds);
  const result = await searchRepresentations({ candidates, tasks, seed: ctx.spec.training.seed, budgetMs, log: deps.log });
  deps.log(`representation search: ${result.report.chosen} chosen; ${result.report.verdict}`);
  const { report, linearRefit, hiddenRefit } = await chooseHead(ctx, deps, { result, task: tasks[0], budgetMs, searchStarted });
  await deps.progress.update({ search: report });
  if (result.chosen === 0) return { ...ctx, search: report, linearRefit, hiddenRefit };
  const isPixels = result.chosen === cuts.length;
  const chosen = isPixels ? pixels! : cuts[result.chosen].embedded;
  const jobBase: JobBase = isPixels ? pixelJobBase : { ...ctx.jobBase, cut: cuts[result.chosen].cut };
  return {
    ...ctx,
    jobBase,
    data: chosen.prepared,
    embeddingSize: chosen.size,
    embedded: chosen,
    engine: await engineOf(jobBase.base.name),
    search: report,
    linearRefit,
    hiddenRefit,
  };
}

/**
 * The second step of the search for a single-task job: the spec's own head (its trunk,
 * dropout and optimiser: "one hidden layer with dropout" by default) cross-validated on
 * the winning representation's folds, each fold training with early stopping on its
 * held-out part. It replaces the linear model only if its mean is strictly higher; the
 * refit then trains on train + validation for the median of the folds' best epochs.
 * Skipped (and said so) when the spec's model has no hidden layer or the budget is spent.
 */
async function crossValidateHidden(
  ctx: EmbeddedJob,
  deps: StageDeps,
  input: { x: Float32Array; size: number; task: SearchTask; folds: number; budgetMs: number; totalBudgetMs: number },
): Promise<{ entry: SearchReport['leaderboard'][number]; mean: number; epochs: number } | { skipped: string }> {
  const { spec, heads } = ctx;
  const trunk = spec.sharing.method === 'hard' ? spec.sharing.trunk : spec.sharing.tower;
  if (trunk.length === 0) return { skipped: 'the spec’s model has no hidden layer' };
  // A fold trains a network (1–8 s at 300 records here): started only with half the budget left.
  if (input.budgetMs < input.totalBudgetMs / 2)
    return { skipped: `the linear search used more than half of the ${(input.totalBudgetMs / 1000).toFixed(0)} s budget` };
  const started = performance.now();
  const folds = stratifiedFolds(input.task.labels, Math.min(input.folds, HIDDEN_FOLDS), spec.training.seed);
  const accs: number[] = [];
  const epochs: number[] = [];
  const rows = (idx: number[]) => {
    const out = new Float32Array(idx.length * input.size);
    idx.forEach((r, n) => out.set(input.x.subarray(r * input.size, (r + 1) * input.size), n * input.size));
    return out;
  };
  for (let f = 0; f < folds.k; f++) {
    // Stop before a fold that would likely overrun: each fold costs about what the first did.
    const spent = performance.now() - started;
    if (f > 0 && spent + spent / f > input.budgetMs) return { skipped: `would not finish within the time budget (${f} of ${folds.k} folds done)` };
    const { fit, held } = foldSplit(folds, f);
    const split = (idx: number[]) => ({ x: rows(idx), count: idx.length, targets: { [input.task.name]: Int32Array.from(idx, (i) => input.task.labels[i]) } });
    const model = await buildHeadModel({
      embeddingSize: input.size,
      tasks: heads,
      sharing: spec.sharing,
      dropout: spec.training.dropout,
      seed: spec.training.seed,
    });
    try {
      const heldSplit = split(held);
      const result = await deps.trainer(
        model,
        { train: split(fit), validation: heldSplit },
        {
          epochs: spec.training.epochs,
          batchSize: spec.training.batchSize,
          learningRate: spec.training.learningRate,
          patience: spec.training.patience,
          tasks: heads,
          sharing: spec.sharing,
          seed: spec.training.seed,
        },
      );
      epochs.push(result.bestEpoch + 1);
      const out = (await predictOutputs(model, heldSplit.x, held.length))[0];
      accs.push(accuracyOf(out, heldSplit.targets[input.task.name], held.length, input.task.classes).accuracy);
    } finally {
      model.dispose();
    }
  }
  const mean = accs.reduce((a, b) => a + b, 0) / accs.length;
  const sd = Math.sqrt(accs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, accs.length - 1));
  const sorted = [...epochs].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const seconds = (performance.now() - started) / 1000;
  deps.log(
    `search: hidden ${JSON.stringify(trunk)} head on the winner: ${mean.toFixed(3)} ± ${sd.toFixed(3)} in ${seconds.toFixed(1)} s (best epochs ${epochs.join(', ')})`,
  );
  return {
    mean,
    epochs: median,
    entry: {
      candidate: '',
      size: input.size,
      family: 'hidden',
      cvMean: Math.round(mean * 1e4) / 1e4,
      cvSd: Math.round(sd * 1e4) / 1e4,
      epochs: median,
      seconds: Math.round(seconds * 100) / 100,
      chosen: false,
    },
  };
}

/**
 * After the representation: for a single-task job, which head family (the linear model or
 * the spec's hidden-layer head) and, for the linear one, the refit's λ; the leaderboard
 * and the sentence saying how the served model is made.
 */
async function chooseHead(
  ctx: EmbeddedJob,
  deps: StageDeps,
  input: { result: Awaited<ReturnType<typeof searchRepresentations>>; task: SearchTask; budgetMs: number; searchStarted: number },
): Promise<{ report: SearchReport; linearRefit: SearchedJob['linearRefit']; hiddenRefit: SearchedJob['hiddenRefit'] }> {
  const single = ctx.heads.length === 1;
  const { result, task: firstTask, budgetMs, searchStarted } = input;
  const report: SearchReport = { ...result.report, leaderboard: [...result.report.leaderboard] };
  let linearRefit: SearchedJob['linearRefit'] = single ? { l2: result.l2 } : undefined;
  let hiddenRefit: SearchedJob['hiddenRefit'];
  if (single) {
    const winner = report.leaderboard.find((e) => e.chosen)!;
    const hidden = await crossValidateHidden(ctx, deps, {
      x: result.x,
      size: winner.size,
      task: firstTask,
      folds: report.folds,
      budgetMs: Math.max(0, budgetMs - (performance.now() - searchStarted)),
      totalBudgetMs: budgetMs,
    });
    if ('skipped' in hidden)
      report.leaderboard.push({ candidate: winner.candidate, size: winner.size, family: 'hidden', chosen: false, note: `not tried: ${hidden.skipped}` });
    else {
      const beats = hidden.entry.cvMean! > winner.cvMean!;
      report.leaderboard.push({ ...hidden.entry, candidate: winner.candidate, chosen: beats });
      winner.chosen = !beats;
      report.verdict += beats
        ? `; a hidden-layer head beats the linear model on it (${(100 * hidden.entry.cvMean!).toFixed(1)} vs ${(100 * winner.cvMean!).toFixed(1)})`
        : `; the linear model is kept over a hidden-layer head (${(100 * winner.cvMean!).toFixed(1)} vs ${(100 * hidden.entry.cvMean!).toFixed(1)})`;
      if (beats) {
        linearRefit = undefined;
        hiddenRefit = { epochs: hidden.epochs };
      }
    }
    report.seconds = Math.round((performance.now() - searchStarted) / 10) / 100;
  }
  if (linearRefit) {
    // The refit's λ from more draws of the folds than the ranking needed (see chooseRefitL2).
    const task = firstTask;
    const winner = report.leaderboard.find((e) => e.chosen && e.family === 'linear')!;
    const refined = await chooseRefitL2(result.x, winner.size, task, result.l2Scores[task.name], { k: report.folds, seed: ctx.spec.training.seed });
    if (refined.l2 !== linearRefit.l2[task.name])
      deps.log(
        `search: λ ${refined.l2} for the refit (CV means over ${1 + L2_REPEATS} fold draws: ${refined.means.map((m) => `${m.l2}: ${m.mean.toFixed(3)}`).join(', ')})`,
      );
    linearRefit = { l2: { [task.name]: refined.l2 } };
    winner.tasks![task.name] = { ...winner.tasks![task.name], l2: refined.l2 };
    report.seconds = Math.round((performance.now() - searchStarted) / 10) / 100;
  }
  report.model = linearRefit
    ? 'the winning linear model refitted on train + validation (λ from the folds); the test split is used once, for the report and the gate'
    : hiddenRefit
      ? `the spec’s head refitted on train + validation for ${hiddenRefit.epochs} epochs (the folds' median best epoch); the test split is used once, for the report and the gate`
      : 'the spec’s multi-task model trained on the winning representation';
  return { report, linearRefit, hiddenRefit };
}
