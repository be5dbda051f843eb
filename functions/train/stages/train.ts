/**
 * Stage `train`: the plan chosen at load trains the model the job will serve, on the
 * representation the search stage chose.
 */
import type { SearchedJob, StageDeps, TrainedJob } from '../context.js';

export async function train(ctx: SearchedJob, deps: StageDeps): Promise<TrainedJob> {
  return { ...ctx, ...(await ctx.plan.train(ctx, deps)) };
}
