/**
 * Stage `publish`: every file of the version first (model, report.json),
 * metadata.json last, then the alias the gate allows; the checkpoint goes once
 * the version is whole.
 */
import { headlineMetric } from '../../../shared/ml/mtl-evaluate.js';
import { saveModel } from '../../../shared/ml/model-io.js';
import { applyPromotion } from '../../../shared/models/promotion.js';
import { newVersionId, versionPrefix, writeMetadata } from '../../../shared/models/registry.js';
import { putJson } from '../../../shared/ports/object-store.js';
import { deleteCheckpoint } from '../checkpoint.js';
import type { GatedJob, StageDeps } from '../context.js';
import { buildMetadata, buildVersionReport } from '../report.js';

export interface Published {
  version: string;
}

export async function publish(ctx: GatedJob, deps: StageDeps): Promise<Published> {
  const started = deps.now().getTime();
  const createdAt = deps.now();
  const version = newVersionId(createdAt);
  const prefix = versionPrefix(ctx.modelName, version);
  await saveModel(ctx.served, deps.store, prefix);
  // Up to the report: the time the report itself takes to write is not in it.
  const pub = { version, createdAt, timings: { ...deps.timings(), publishMs: deps.now().getTime() - started } };
  await putJson(deps.store, `${prefix}/report.json`, buildVersionReport(ctx, pub));
  await writeMetadata(deps.store, buildMetadata(ctx, pub));
  await applyPromotion(deps.store, ctx.modelName, version, ctx.promotion);
  await deleteCheckpoint(deps.store, ctx.input.jobId);
  const summary = Object.entries(ctx.evaluation).map(
    ([t, m]) => `${t}: ${m ? `${headlineMetric(m).metric} ${headlineMetric(m).value.toFixed(3)}` : 'no test records'}`,
  );
  deps.log(`published ${ctx.modelName}@${version} (${summary.join(', ')})`);
  return { version };
}
