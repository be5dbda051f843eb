/**
 * Stage `train`: the plan chosen at load trains the model the job will serve. The
 * seam for other ways to find a model (a representation search would be another
 * stage before this one, or another plan).
 */
import type { EmbeddedJob, StageDeps, TrainedJob } from '../context.js';

export async function train(ctx: EmbeddedJob, deps: StageDeps): Promise<TrainedJob> {
  return { ...ctx, ...(await ctx.plan.train(ctx, deps)) };
}
