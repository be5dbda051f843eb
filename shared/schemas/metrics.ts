import { z } from 'zod';
import { SearchReportSchema } from './search.js';

/**
 * Metrics as the training job stores them (report.json, metadata.json) and the API
 * and dashboard read them back: the schemas are the contract, the ML code builds
 * values of these types.
 */

const fraction = z.number();

export const ClassMetricsSchema = z.strictObject({ label: z.string(), precision: fraction, recall: fraction, f1: fraction, support: z.number().int() });

export const ClassificationMetricsSchema = z.strictObject({
  type: z.literal('classification'),
  count: z.number().int(),
  accuracy: fraction,
  macroF1: fraction,
  perClass: z.array(ClassMetricsSchema),
  /** matrix[t][p]: records of true class t predicted as p; rows and columns follow `labels`. */
  confusionMatrix: z.strictObject({ labels: z.array(z.string()), matrix: z.array(z.array(z.number().int())) }),
});

export const MultilabelMetricsSchema = z.strictObject({
  type: z.literal('multilabel'),
  count: z.number().int(),
  microF1: fraction,
  macroF1: fraction,
  subsetAccuracy: fraction,
  perLabel: z.array(ClassMetricsSchema),
});

const RegressionOutputMetricsSchema = z.strictObject({ mae: z.number(), rmse: z.number(), r2: z.number().nullable() });

export const RegressionMetricsSchema = RegressionOutputMetricsSchema.extend({
  type: z.literal('regression'),
  count: z.number().int(),
  perOutput: z.array(RegressionOutputMetricsSchema),
});

/** A task's metrics on a split, by task type. */
export const TaskMetricsSchema = z.discriminatedUnion('type', [ClassificationMetricsSchema, MultilabelMetricsSchema, RegressionMetricsSchema]);
export type TaskMetricsRecord = z.infer<typeof TaskMetricsSchema>;

/** Figures of one training epoch (loss, loss_<task>, weight_<task>, val_loss, val_acc, …). */
export const EpochLogsSchema = z.record(z.string(), z.number());

export const SharingComparisonSchema = z.strictObject({
  metric: z.string(),
  higherIsBetter: z.boolean(),
  withSharing: z.number().nullable(),
  withoutSharing: z.number().nullable(),
  difference: z.number().nullable(),
  better: z.enum(['sharing', 'single-task', 'tie']).nullable(),
});

const FigurePairSchema = z.strictObject({ transfer: z.number(), baseline: z.number(), difference: z.number() });
const RegressionFiguresSchema = z.strictObject({ r2: z.number().nullable(), mae: z.number() });

/**
 * The transfer model against the from-scratch baseline, per task of every kind.
 * Reports written when only classification was compared carry the pair alone
 * (`transfer`, `baseline`, `difference` of accuracy): the other fields are optional.
 */
export const BaselineComparisonSchema = z.strictObject({
  method: z.string(),
  tasks: z.record(
    z.string(),
    FigurePairSchema.extend({
      metric: z.string().optional(),
      higherIsBetter: z.boolean().optional(),
      figures: z.record(z.string(), FigurePairSchema).optional(),
      trainMean: RegressionFiguresSchema.extend({ beaten: z.boolean() }).optional(),
      better: z.enum(['transfer', 'baseline', 'tie']).optional(),
    }),
  ),
  baselineWins: z.boolean(),
  verdict: z.string(),
});

/** The baseline's test figures of one task by kind; a classification entry of an older report has no `type`. */
export const BaselineTaskResultSchema = z.union([
  z.strictObject({ type: z.literal('classification').optional(), accuracy: z.number(), count: z.number().int() }),
  z.strictObject({ type: z.literal('multilabel'), microF1: z.number(), macroF1: z.number(), count: z.number().int() }),
  RegressionFiguresSchema.extend({ type: z.literal('regression'), count: z.number().int(), trainMean: RegressionFiguresSchema }),
]);

export const BaselineResultSchema = z.strictObject({
  method: z.string(),
  test: z.record(z.string(), BaselineTaskResultSchema),
  epochsRun: z.number().int(),
  ms: z.number(),
});

const BeforeAfterSchema = z.strictObject({ before: z.number(), after: z.number(), difference: z.number() });

export const FineTuneReportSchema = z.strictObject({
  layers: z.array(z.string()),
  cut: z.string(),
  learningRate: z.number(),
  epochsRun: z.number().int(),
  history: z.array(EpochLogsSchema),
  /** Set when an interrupted attempt's checkpoint was resumed: the first epoch this attempt ran. */
  resumedFromEpoch: z.number().int().optional(),
  /** Test accuracy per classification task with the frozen base and after fine-tuning. */
  test: z.record(z.string(), BeforeAfterSchema),
});

export const ContinualReportSchema = z.strictObject({
  from: z.string(),
  trunk: z.enum(['frozen', 'distilled']),
  added: z.array(z.string()),
  extended: z.array(z.string()),
  tasks: z.record(z.string(), BeforeAfterSchema.extend({ count: z.number().int(), dataset: z.string() })),
  skipped: z.record(z.string(), z.string()).optional(),
});

export const MetricComparisonSchema = z.strictObject({
  task: z.string(),
  metric: z.string(),
  previous: z.number(),
  candidate: z.number(),
  delta: z.number(),
  on: z.string(),
});

export const PromotionDecisionSchema = z.strictObject({
  promote: z.boolean(),
  reason: z.string(),
  margin: z.number(),
  replaces: z.string().optional(),
  comparisons: z.array(MetricComparisonSchema),
});

/**
 * `metadata.metrics` of a version: a summary per task (flat numbers such as
 * accuracy, or a prototype's examples) beside the job's comparisons. Loose on
 * purpose for the per-task entries: a version written by an older job may carry
 * figures this one does not know, and a reader takes what it needs.
 */
export const ModelMetricsSchema = z.looseObject({
  sharingComparison: z.record(z.string(), SharingComparisonSchema).optional(),
  baseline: BaselineComparisonSchema.optional(),
  fineTune: z.record(z.string(), BeforeAfterSchema).optional(),
  continual: ContinualReportSchema.partial().optional(),
  promotion: PromotionDecisionSchema.optional(),
  /** The representation search's leaderboard (shared/ml/search.ts). */
  search: SearchReportSchema.optional(),
});
export type ModelMetrics = z.infer<typeof ModelMetricsSchema>;

/** A task's summary in `metadata.metrics[<task>]`, as far as the promotion gate reads it. */
export const TaskSummarySchema = z.looseObject({ accuracy: z.number().optional(), microF1: z.number().optional(), r2: z.number().optional() });
