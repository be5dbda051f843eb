/** Stage `gate`: may this version replace the serving one? (see promotionStage and shared/models/promotion.ts) */
import { promotionStage } from '../../../shared/ml/transfer-job.js';
import type { ComparedJob, GatedJob, StageDeps } from '../context.js';

export async function gate(ctx: ComparedJob, deps: StageDeps): Promise<GatedJob> {
  const promotion = await promotionStage({
    store: deps.store,
    model: ctx.modelName,
    spec: ctx.spec,
    heads: ctx.heads,
    candidate: ctx.testMetrics,
    test: ctx.shards.test,
    sourceShape: ctx.report.inputShape,
    inputSpec: ctx.inputSpec,
    served: ctx.served,
    jobBase: ctx.jobBase,
    dataset: { name: ctx.report.dataset, hash: ctx.report.hash },
    continual: ctx.continual,
    log: deps.log,
  });
  deps.log(promotion.reason);
  return { ...ctx, promotion };
}
