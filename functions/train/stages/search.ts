/**
 * Stage `search`: which representation the model reads, measured on this job's own
 * records (shared/ml/search.ts). The candidates are the cuts the embed stage computed
 * from one forward pass, and the raw pixels of `base: "none"`; the winner replaces the
 * job's data, base and cut before anything trains, so every later stage (training, the
 * evaluation on the untouched test split, the baseline, the gate, the published
 * metadata) sees one representation. Then the head family: the spec's own model is
 * cross-validated on the winner against the linear models, and the better one is refitted
 * on train + validation (plans.ts): a logistic model per task with its λ from the folds,
 * or the spec's model for the folds' median best epoch.
 */
import { resolveBase, NONE_INPUT_SHAPE } from '../../../shared/ml/base-models.js';
import type { ImageShape } from '../../../shared/ml/embedder.js';
import {
  chooseRefitL2,
  crossValidateTask,
  L2_REPEATS,
  searchRepresentations,
  TooFewForFoldsError,
  type SearchCandidate,
  type SearchReport,
  type SearchTask,
} from '../../../shared/ml/search.js';
import { buildHeadModel } from '../../../shared/ml/architectures.js';
import { accuracyOf } from '../../../shared/ml/baseline.js';
import { foldSplit, stratifiedFolds } from '../../../shared/ml/folds.js';
import { bestPossibleMean } from '../../../shared/ml/logistic.js';
import { predictOutputs } from '../../../shared/ml/inference.js';
import { embedJobSplits, taskWeightsOf, type EmbeddedSplits, type JobBase } from '../../../shared/ml/transfer-job.js';
import { engineOf } from '../../../shared/ml/onnx/runtime.js';
import { concatSplits, SPLITS, type Split } from '../../../shared/ml/split.js';
import { concatEmbedded, cutLabel } from '../../../shared/ml/candidates.js';
import type { Cut } from '../../../shared/schemas/base-model.js';
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
  // Every cut of a pretrained base side by side, from the same pass: its features are the others' concatenated.
  const concatCut: Cut | undefined =
    cuts.length > 1 && ctx.jobBase.base.kind === 'pretrained'
      ? { ...cuts[0].cut, concat: cuts.slice(1).map((c) => ({ layer: c.cut.layer, pooling: c.cut.pooling })) }
      : undefined;
  const concat = concatCut && { name: cutLabel(concatCut), cut: concatCut, embedded: concatEmbedded(cuts.map((c) => c.embedded)) };
  const served = [...cuts, ...(concat ? [concat] : [])];
  const candidates: SearchCandidate[] = vectorFamily
    ? [{ name: 'standardised features', size: ctx.embeddingSize, x: pooled.x }]
    : [
        ...served.map((c) => ({ name: c.name, size: c.embedded.size, x: poolOf(c.embedded) })),
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
  const { report, linearRefit, hiddenRefit } = await chooseHead(ctx, deps, { result, tasks, targets: pooled.targets, budgetMs, searchStarted });
  await deps.progress.update({ search: report });
  if (result.chosen === 0) return { ...ctx, search: report, linearRefit, hiddenRefit };
  const isPixels = result.chosen === served.length;
  const chosen = isPixels ? pixels! : served[result.chosen].embedded;
  const jobBase: JobBase = isPixels ? pixelJobBase : { ...ctx.jobBase, cut: served[result.chosen].cut };
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

/** Records `idx` of every task's targets (a task's rows are `length / count` values wide). */
function pickTargets(targets: Split['targets'], count: number, idx: number[]): Split['targets'] {
  return Object.fromEntries(
    Object.entries(targets).map(([name, t]) => {
      const width = t.length / count;
      const out = t instanceof Int32Array ? new Int32Array(idx.length * width) : new Float32Array(idx.length * width);
      idx.forEach((r, n) => out.set(t.subarray(r * width, (r + 1) * width), n * width));
      return [name, out];
    }),
  );
}

/**
 * The second step of the search: the spec's own model (its trunk, dropout, optimiser and
 * loss weighting, every task including the auxiliary ones: "one hidden layer with
 * dropout" by default) cross-validated on the winning representation's folds, each fold
 * training with early stopping on its held-out part. Scored like the linear family: one
 * task, CV accuracy; several, the mean over main tasks of accuracy / that task's best
 * linear score. The folds are stratified on the main task with the most labels (records
 * without it sit out). Skipped (and said so) when the spec's model has no hidden layer or
 * the budget is spent; stopped after the fold from which it could no longer beat the
 * linear winner even with every record of the folds left right.
 */
async function crossValidateHidden(
  ctx: EmbeddedJob,
  deps: StageDeps,
  input: {
    x: Float32Array;
    size: number;
    tasks: SearchTask[];
    /** Every head's pool targets (train then validation). */
    targets: Split['targets'];
    /** Per main task, its best linear CV accuracy (the multi-task criterion's denominators). */
    best: Record<string, number>;
    /** Per main task, the winning linear candidate's CV accuracy. */
    winner: Record<string, number>;
    /** The winning linear candidate's criterion as the leaderboard shows it: the hidden family must beat it. */
    toBeat: number;
    folds: number;
    budgetMs: number;
    totalBudgetMs: number;
  },
): Promise<{ entry: SearchReport['leaderboard'][number]; mean: number; epochs: number } | { skipped: string }> {
  const { spec, heads } = ctx;
  const trunk = spec.sharing.method === 'hard' ? spec.sharing.trunk : spec.sharing.tower;
  if (trunk.length === 0) return { skipped: 'the spec’s model has no hidden layer' };
  // The hidden family must beat the linear one strictly; a linear model right on every
  // held-out record of every main task cannot be beaten, so the folds would only cost time
  // (measured: 2 s of a 500-image job whose classes a linear model separates).
  if (input.tasks.every((t) => input.winner[t.name] === 1))
    return { skipped: 'the linear model classified every held-out record correctly, which nothing can beat' };
  // A fold trains a network (1–8 s at 300 records here): started only with half the budget left.
  if (input.budgetMs < input.totalBudgetMs / 2)
    return { skipped: `the linear search used more than half of the ${(input.totalBudgetMs / 1000).toFixed(0)} s budget` };
  const started = performance.now();
  const count = input.tasks[0].labels.length;
  const labelled = (t: SearchTask) => t.labels.reduce((n, y) => n + (y >= 0 ? 1 : 0), 0);
  const stratum = input.tasks.reduce((a, b) => (labelled(b) > labelled(a) ? b : a));
  const folds = stratifiedFolds(stratum.labels, Math.min(input.folds, HIDDEN_FOLDS), spec.training.seed);
  const perTask: Record<string, number[]> = Object.fromEntries(input.tasks.map((t) => [t.name, []]));
  const epochs: number[] = [];
  const single = input.tasks.length === 1;
  const criterion = foldCriterion(input.tasks, input.best);
  let stoppedAfter: number | undefined;
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
    const split = (idx: number[]): Split => ({ x: rows(idx), count: idx.length, targets: pickTargets(input.targets, count, idx) });
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
          lossWeights: taskWeightsOf(spec, heads),
          lossWeighting: spec.lossWeighting,
          sharing: spec.sharing,
          seed: spec.training.seed,
        },
      );
      epochs.push(result.bestEpoch + 1);
      const outputs = await predictOutputs(model, heldSplit.x, held.length);
      for (const t of input.tasks) {
        const out = outputs[heads.findIndex((h) => h.name === t.name)];
        perTask[t.name].push(accuracyOf(out, heldSplit.targets[t.name], held.length, t.classes).accuracy);
      }
    } finally {
      model.dispose();
    }
    // Raced as the linear candidates are (cannotReach in logistic.ts): once even every record
    // right in the folds left could not beat the linear winner, those folds would only cost time.
    if (f < folds.k - 1 && bestPossibleMean(criterion.of(perTask, f + 1), folds.k, criterion.max) <= input.toBeat) {
      stoppedAfter = f + 1;
      break;
    }
  }
  const stats = (xs: number[]) => {
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    return { mean: m, sd: Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, xs.length - 1)) };
  };
  const { mean, sd } = stats(criterion.of(perTask, epochs.length));
  const sorted = [...epochs].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const seconds = (performance.now() - started) / 1000;
  const round4 = (x: number) => Math.round(x * 1e4) / 1e4;
  deps.log(
    `search: the spec's ${JSON.stringify(trunk)} model on the winner, ${epochs.length} of ${folds.k} folds: ${mean.toFixed(3)} ± ${sd.toFixed(3)} in ${seconds.toFixed(1)} s (best epochs ${epochs.join(', ')})${stoppedAfter ? '; stopped: it could not beat the linear model any more' : ''}`,
  );
  return {
    mean,
    epochs: median,
    entry: {
      candidate: '',
      size: input.size,
      family: 'hidden',
      folds: epochs.length,
      cvMean: round4(mean),
      cvSd: round4(sd),
      tasks: single
        ? undefined
        : Object.fromEntries(
            input.tasks.map((t) => {
              const s = stats(perTask[t.name]);
              return [t.name, { cvMean: round4(s.mean), cvSd: round4(s.sd) }];
            }),
          ),
      epochs: median,
      seconds: Math.round(seconds * 100) / 100,
      chosen: false,
      ...(stoppedAfter
        ? { note: `stopped after ${stoppedAfter} of ${folds.k} folds: it could not beat the linear model even if every remaining fold were perfect` }
        : {}),
    },
  };
}

/**
 * Per fold, the criterion the linear family was ranked by (one task: its accuracy; several:
 * the mean of each task's accuracy over its best linear one), and the most a fold can score
 * (every record right).
 */
function foldCriterion(tasks: SearchTask[], best: Record<string, number>) {
  const part = (t: SearchTask, accuracy: number) => (tasks.length === 1 ? accuracy : accuracy / Math.max(1e-12, best[t.name]) / tasks.length);
  return {
    of: (perTask: Record<string, number[]>, folds: number) =>
      Array.from({ length: folds }, (_, f) => tasks.reduce((a, t) => a + part(t, perTask[t.name][f]), 0)),
    max: tasks.reduce((a, t) => a + part(t, 1), 0),
  };
}

/**
 * After the representation: which head family serves it (the linear models, one per
 * task, or the spec's model with its hidden layer), the refit's λ per task for the
 * linear one, the leaderboard and the sentence saying how the served model is made.
 * The linear family needs every task, auxiliary ones too, to be single-label
 * classification (a logistic model per task); otherwise the spec's model trains on the
 * winner as it would without the search.
 */
async function chooseHead(
  ctx: EmbeddedJob,
  deps: StageDeps,
  input: {
    result: Awaited<ReturnType<typeof searchRepresentations>>;
    tasks: SearchTask[];
    targets: Split['targets'];
    budgetMs: number;
    searchStarted: number;
  },
): Promise<{ report: SearchReport; linearRefit: SearchedJob['linearRefit']; hiddenRefit: SearchedJob['hiddenRefit'] }> {
  const { result, tasks, budgetMs, searchStarted } = input;
  const report: SearchReport = { ...result.report, leaderboard: [...result.report.leaderboard] };
  const seconds = () => Math.round((performance.now() - searchStarted) / 10) / 100;
  const notLinear = ctx.heads.filter((h) => h.type !== 'classification');
  if (notLinear.length) {
    report.model = `the spec’s model trained on the winning representation (a linear refit fits classification tasks only; ${notLinear.map((h) => `"${h.name}" is ${h.type}`).join(', ')})`;
    return { report, linearRefit: undefined, hiddenRefit: undefined };
  }
  const winner = report.leaderboard.find((e) => e.chosen)!;
  const best = Object.fromEntries(
    tasks.map((t) => [t.name, Math.max(...report.leaderboard.flatMap((e) => (e.tasks?.[t.name] ? [e.tasks[t.name].cvMean] : [])))]),
  );
  const hidden = await crossValidateHidden(ctx, deps, {
    x: result.x,
    size: winner.size,
    tasks,
    targets: input.targets,
    best,
    winner: result.cvMeans,
    toBeat: winner.cvMean!,
    folds: report.folds,
    budgetMs: Math.max(0, budgetMs - (performance.now() - searchStarted)),
    totalBudgetMs: budgetMs,
  });
  if ('skipped' in hidden) {
    report.leaderboard.push({ candidate: winner.candidate, size: winner.size, family: 'hidden', chosen: false, note: `not tried: ${hidden.skipped}` });
  } else {
    const beats = hidden.entry.cvMean! > winner.cvMean!;
    report.leaderboard.push({ ...hidden.entry, candidate: winner.candidate, chosen: beats });
    winner.chosen = !beats;
    const [a, b] = [(100 * hidden.entry.cvMean!).toFixed(1), (100 * winner.cvMean!).toFixed(1)];
    report.verdict += beats
      ? `; the spec’s hidden-layer model beats the linear one on it (${a} vs ${b})`
      : `; the linear model is kept over the spec’s hidden-layer model (${b} vs ${a})`;
    if (beats) {
      report.seconds = seconds();
      report.model = `the spec’s model refitted on train + validation for ${hidden.epochs} epochs (the folds' median best epoch); the test split is used once, for the report and the gate`;
      return { report, linearRefit: undefined, hiddenRefit: { epochs: hidden.epochs } };
    }
  }
  // The refit's λ per task from more draws of the folds than the ranking needed (see chooseRefitL2).
  const l2: Record<string, number> = {};
  const all: SearchTask[] = ctx.heads.map(
    (h) => tasks.find((t) => t.name === h.name) ?? { name: h.name, classes: h.labels?.length ?? 0, labels: input.targets[h.name] as Int32Array },
  );
  for (const task of all) {
    let first = result.l2Scores[task.name];
    try {
      // An auxiliary task was not part of the ranking: one CV on the winner gives its path.
      first ??= (await crossValidateTask(result.x, winner.size, task, { k: report.folds, seed: ctx.spec.training.seed })).scores;
    } catch (e) {
      if (!(e instanceof TooFewForFoldsError)) throw e;
      report.seconds = seconds();
      report.model = `the spec’s model trained on the winning representation (auxiliary task "${task.name}" has too few records per class to choose a linear model's λ)`;
      return { report, linearRefit: undefined, hiddenRefit: undefined };
    }
    const refined = await chooseRefitL2(result.x, winner.size, task, first, { k: report.folds, seed: ctx.spec.training.seed });
    if (refined.l2 !== first.reduce((p, q) => (q.mean > p.mean + 1e-12 ? q : p)).l2)
      deps.log(
        `search: λ ${refined.l2} for the ${task.name} refit (CV means over ${1 + L2_REPEATS} fold draws: ${refined.means.map((m) => `${m.l2}: ${m.mean.toFixed(3)}`).join(', ')})`,
      );
    l2[task.name] = refined.l2;
    if (winner.tasks?.[task.name]) winner.tasks[task.name] = { ...winner.tasks[task.name], l2: refined.l2 };
  }
  report.seconds = seconds();
  report.model = `the winning linear model${ctx.heads.length > 1 ? ' of each task' : ''} refitted on train + validation (λ from the folds); the test split is used once, for the report and the gate${ctx.heads.length > 1 ? '; the tasks share the frozen base only, so no single-task comparison is made' : ''}`;
  return { report, linearRefit: { l2 }, hiddenRefit: undefined };
}
