/**
 * Stage `compare`: what the model is measured against. "Does sharing help?" (one
 * single-task model per main task, trained the same way), "does transfer help?"
 * (a small network from scratch on the same images; for vector data, a linear model
 * on the same standardised features), and for an extended model, each
 * old task before and after on the test split that taught it.
 */
import { compareWithSingleTask } from '../../../shared/ml/mtl-evaluate.js';
import { baselineStage, continualReport, linearBaselineStage } from '../../../shared/ml/transfer-job.js';
import type { ComparedJob, EvaluatedJob, StageDeps } from '../context.js';
import { PROGRESS } from '../progress.js';

export async function compare(ctx: EvaluatedJob, deps: StageDeps): Promise<ComparedJob> {
  // A linear refit per task shares only the frozen base: each of its heads is already its task's single-task model.
  const sharingComparison = ctx.heads.length > 1 && !ctx.linearRefit ? await singleTaskComparison(ctx, deps) : undefined;
  const continual = ctx.jobBase.from ? await continualReport(deps.store, ctx.jobBase, ctx.served) : undefined;
  const opts = ctx.spec.training;
  const baseline = ctx.baselineRun
    ? await baselineStage(ctx.baselineRun, ctx.testMetrics, ctx.spec)
    : ctx.inputSpec.type === 'vector'
      ? await linearBaselineStage({
          data: ctx.data,
          embeddingSize: ctx.embeddingSize,
          heads: ctx.heads,
          seed: opts.seed,
          epochs: opts.epochs,
          transferTest: ctx.testMetrics,
        })
      : undefined;
  if (baseline) deps.log(baseline.comparison.verdict);
  return { ...ctx, sharingComparison, continual, baseline };
}

function singleTaskComparison(ctx: EvaluatedJob, deps: StageDeps) {
  const { data, spec } = ctx;
  const opts = spec.training;
  return compareWithSingleTask({
    embeddingSize: ctx.embeddingSize,
    heads: ctx.heads,
    sharing: spec.sharing,
    data: { train: data.train, validation: data.validation.count > 0 ? data.validation : undefined },
    test: data.test,
    shared: ctx.evaluation,
    training: {
      epochs: opts.epochs,
      batchSize: opts.batchSize,
      learningRate: opts.learningRate,
      patience: opts.patience,
      seed: opts.seed,
      selectOnValidation: ctx.selectOnValidation,
    },
    dropout: opts.dropout,
    seed: opts.seed,
    trainer: deps.trainer,
    onTask: (task, i, n) => {
      deps.log(`single-task ${task} (${i + 1}/${n}) trained for the sharing comparison`);
      deps.progress.tick({ progress: PROGRESS.evaluated + ((PROGRESS.compared - PROGRESS.evaluated) * (i + 1)) / n });
    },
  });
}
