import { z } from 'zod';
import { CutSchema } from './base-model.js';
import { SplitNameSchema } from './report.js';
import { LossWeightingSchema, SharingSchema } from './spec.js';
import {
  BaselineComparisonSchema,
  BaselineResultSchema,
  ContinualReportSchema,
  EpochLogsSchema,
  FineTuneReportSchema,
  PromotionDecisionSchema,
  SharingComparisonSchema,
  TaskMetricsSchema,
} from './metrics.js';
import { SearchReportSchema } from './search.js';

/** How a job trains (functions/train/plans.ts): heads on a frozen base, then fine-tuning its top, or extending a published model. */
export const TrainingPlanNameSchema = z.enum(['heads', 'fine-tune', 'continual']);
export type TrainingPlanName = z.infer<typeof TrainingPlanNameSchema>;

/** Names of the training job's stages, in the order they run (functions/train/stages). */
export const StageNameSchema = z.enum(['load', 'embed', 'search', 'train', 'evaluate', 'compare', 'gate', 'publish']);
export type StageName = z.infer<typeof StageNameSchema>;

const perSplit = <T extends z.ZodType>(t: T) => z.record(SplitNameSchema, t);

export const TaskReportSchema = z.strictObject({
  type: z.enum(['classification', 'multilabel', 'regression']),
  auxiliary: z.boolean(),
  labels: z.array(z.string()).optional(),
  thresholds: z.array(z.number()).optional(),
  /** Multilabel: whether the thresholds were tuned on labelled validation rows (else 0.5). */
  thresholdsTuned: z.boolean().optional(),
  size: z.number().int().optional(),
  mean: z.array(z.number()).optional(),
  std: z.array(z.number()).optional(),
  labelled: perSplit(z.number().int()),
  /** The weight the task's loss ended training with. */
  lossWeight: z.number().optional(),
  /** Metrics on the test split; null without labelled test records. */
  test: TaskMetricsSchema.nullable(),
  sharingComparison: SharingComparisonSchema.optional(),
});

/**
 * `models/<model>/<version>/report.json`: everything a training job found out,
 * the contract the API and the dashboard read (per-task and per-class metrics,
 * confusion matrices, per-epoch history, baselines, the promotion verdict and
 * the time each stage took).
 */
export const VersionReportSchema = z.strictObject({
  model: z.string(),
  version: z.string(),
  jobId: z.string(),
  createdAt: z.string(),
  dataset: z.strictObject({ name: z.string(), hash: z.string(), preparedPrefix: z.string() }),
  base: z.strictObject({ name: z.string(), embeddingSize: z.number().int(), embeddingLayer: z.string().optional() }),
  /** Labelled records per split (the ones the job used). */
  splits: perSplit(z.number().int()),
  tasks: z.record(z.string(), TaskReportSchema),
  training: z.strictObject({
    /** Which training plan ran (heads only, fine-tune, continual). */
    plan: TrainingPlanNameSchema,
    epochs: z.number().int(),
    epochsRun: z.number().int(),
    /** 1-based epoch whose weights were kept. */
    bestEpoch: z.number().int(),
    stoppedEarly: z.boolean(),
    resumedFromEpoch: z.number().int().optional(),
    history: z.array(EpochLogsSchema),
    sharing: SharingSchema,
    lossWeighting: LossWeightingSchema,
    taskWeights: z.record(z.string(), z.number()),
  }),
  sharingComparison: z.record(z.string(), SharingComparisonSchema).optional(),
  /** The representation search's leaderboard (shared/ml/search.ts), or why it did not run. */
  search: SearchReportSchema.optional(),
  searchSkipped: z.string().optional(),
  transfer: z.strictObject({
    embeddingCache: z.enum(['hit', 'miss', 'partial']).optional(),
    /** Images found in the embedding cache and images that went through the base (each distinct image once). */
    embeddingCacheImages: z.strictObject({ cached: z.number().int(), embedded: z.number().int() }).optional(),
    cut: CutSchema.optional(),
    baseline: BaselineResultSchema.extend(BaselineComparisonSchema.shape).optional(),
    fineTune: FineTuneReportSchema.optional(),
    continual: ContinualReportSchema.optional(),
    promotion: PromotionDecisionSchema,
  }),
  /** Milliseconds per stage (`<stage>Ms`) and for the whole job (`totalMs`). */
  timings: z.record(z.string(), z.number().nonnegative()),
});
export type VersionReport = z.infer<typeof VersionReportSchema>;
