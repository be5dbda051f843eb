/**
 * The version's report.json and metadata.json, each built by one function from
 * the finished job. The report is parsed with VersionReportSchema before it is
 * written: it is a contract the API and the dashboard read, so a job that would
 * break it fails here rather than in a reader.
 */
import { countLabelled } from '../../shared/ml/task-kinds.js';
import { mapSplits } from '../../shared/ml/split.js';
import type { ModelMetadata } from '../../shared/schemas/model.js';
import { ModelMetricsSchema } from '../../shared/schemas/metrics.js';
import { VersionReportSchema, type VersionReport } from '../../shared/schemas/version-report.js';
import type { GatedJob } from './context.js';

export interface Publication {
  version: string;
  createdAt: Date;
  /** Milliseconds per stage (`<stage>Ms`) and `totalMs`. */
  timings: Record<string, number>;
}

function taskReports(ctx: GatedJob): VersionReport['tasks'] {
  const { data, result, evaluation, sharingComparison } = ctx;
  return Object.fromEntries(
    ctx.heads.map((h) => [
      h.name,
      {
        type: h.type,
        auxiliary: h.auxiliary,
        labels: h.labels,
        thresholds: h.thresholds,
        // Without labelled validation rows the thresholds stay 0.5: say so rather than pass them off as tuned.
        thresholdsTuned: h.type === 'multilabel' ? countLabelled(data.validation.targets[h.name], data.validation.count) > 0 : undefined,
        ...(h.mean ? { size: h.size, mean: h.mean, std: h.std } : {}),
        labelled: mapSplits((s) => countLabelled(data[s].targets[h.name], data[s].count)),
        lossWeight: result.taskWeights[h.name],
        test: evaluation[h.name] ?? null,
        sharingComparison: sharingComparison?.[h.name],
      },
    ]),
  );
}

export function buildVersionReport(ctx: GatedJob, pub: Publication): VersionReport {
  const { spec, result, jobBase, embedded, baseline } = ctx;
  const base = jobBase.base;
  return VersionReportSchema.parse({
    model: ctx.modelName,
    version: pub.version,
    jobId: ctx.input.jobId,
    createdAt: pub.createdAt.toISOString(),
    dataset: { name: ctx.report.dataset, hash: ctx.report.hash, preparedPrefix: ctx.input.preparedPrefix },
    base: { name: base.name, embeddingSize: ctx.embeddingSize, embeddingLayer: base.kind === 'pretrained' ? base.descriptor.embedding.layer : undefined },
    splits: mapSplits((s) => ctx.data[s].count),
    tasks: taskReports(ctx),
    training: {
      plan: ctx.plan.name,
      epochs: spec.training.epochs,
      epochsRun: result.epochsRun,
      bestEpoch: result.bestEpoch + 1,
      stoppedEarly: result.stoppedEarly,
      resumedFromEpoch: ctx.resumedFrom,
      history: result.history,
      // A linear refit serves heads on the representation directly, whatever trunk the spec names.
      sharing: ctx.linearRefit ? { method: 'hard', trunk: [] } : spec.sharing,
      lossWeighting: spec.lossWeighting,
      taskWeights: result.taskWeights,
    },
    sharingComparison: ctx.sharingComparison,
    search: ctx.search,
    searchSkipped: ctx.searchSkipped,
    transfer: {
      embeddingCache: embedded?.cache,
      embeddingCacheImages: embedded?.images,
      cut: jobBase.cut,
      baseline: baseline ? { ...baseline.result, ...baseline.comparison } : undefined,
      fineTune: ctx.fineTune,
      continual: ctx.continual,
      promotion: ctx.promotion,
    },
    timings: pub.timings,
  });
}

export function buildMetadata(ctx: GatedJob, pub: Publication): ModelMetadata {
  const { jobBase, baseline, fineTune, continual, sharingComparison } = ctx;
  return {
    model: ctx.modelName,
    version: pub.version,
    createdAt: pub.createdAt.toISOString(),
    kind: 'train',
    input: ctx.inputSpec,
    base: {
      name: jobBase.baseName,
      embeddingSize: ctx.servedSize,
      ...(jobBase.cut ? { cut: jobBase.cut } : {}),
      ...(ctx.engine ? { engine: ctx.engine } : {}),
    },
    tasks: ctx.heads,
    dataset: { name: ctx.report.dataset, hash: ctx.report.hash },
    spec: ctx.spec,
    jobId: ctx.input.jobId,
    // Parsed so what is written matches what readers of metadata.metrics expect.
    metrics: ModelMetricsSchema.parse({
      ...ctx.testMetrics,
      ...(sharingComparison ? { sharingComparison } : {}),
      ...(baseline ? { baseline: baseline.comparison } : {}),
      ...(ctx.search ? { search: ctx.search } : {}),
      ...(fineTune ? { fineTune: fineTune.test } : {}),
      ...(continual ? { continual } : {}),
      promotion: ctx.promotion,
    }),
  };
}
