/** Stage `evaluate`: thresholds tuned on validation, then the served model's metrics on the test split. */
import { evaluateTasks, summaryMetrics, tuneThresholds } from '../../../shared/ml/mtl-evaluate.js';
import type { EvaluatedJob, StageDeps, TrainedJob } from '../context.js';

export async function evaluate(ctx: TrainedJob, _deps: StageDeps): Promise<EvaluatedJob> {
  const { served, servedData } = ctx;
  // Thresholds belong to the served model, on the inputs it reads (cut activations once fine-tuned).
  const heads = await tuneThresholds(served, ctx.heads, servedData.validation.count > 0 ? servedData.validation : undefined);
  const evaluation = await evaluateTasks(served, heads, servedData.test);
  const testMetrics = Object.fromEntries(Object.entries(evaluation).map(([task, m]) => [task, summaryMetrics(m)]));
  return { ...ctx, heads, evaluation, testMetrics };
}
