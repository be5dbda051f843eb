import { z } from 'zod';
import { StoredErrorBodySchema } from './errors.js';
import { SkippedFileSchema } from './report.js';
import { EpochLogsSchema } from './metrics.js';
import { SearchReportSchema } from './search.js';

/** How many skipped files a job status and a model description name; the dataset report lists them all. */
export const SKIPPED_SHOWN = 5;

/** What preprocessing used of a dataset and what it skipped, with the first reasons. */
export const RecordsSummarySchema = z.strictObject({
  total: z.number().int().nonnegative(),
  used: z.number().int().nonnegative(),
  skipped: z.number().int().nonnegative(),
  firstSkipped: z.array(SkippedFileSchema).max(SKIPPED_SHOWN),
  /** Where the full list is: `prepared/<dataset>/<hash>/report.json`. */
  report: z.string().optional(),
});
export type RecordsSummary = z.infer<typeof RecordsSummarySchema>;

/**
 * Epochs a job status keeps in `history`: a status is rewritten every epoch, so it
 * stays small; a longer run is thinned evenly (see `appendEpoch`). The version's
 * report.json keeps every epoch.
 */
export const MAX_JOB_HISTORY = 200;

export const JobStateSchema = z.enum(['submitted', 'running', 'succeeded', 'failed', 'cancelled']);
export type JobState = z.infer<typeof JobStateSchema>;

export const TERMINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

/** `jobs/<jobId>/status.json`, written by the preprocess function and the training job. */
export const JobStatusSchema = z.strictObject({
  jobId: z.string(),
  model: z.string(),
  dataset: z.string(),
  datasetHash: z.string(),
  state: JobStateSchema,
  /** What the job is doing now, e.g. `embedding`, `training`, `evaluating`, `publishing`. */
  phase: z.string().optional(),
  /** 0..1 over the whole job. */
  progress: z.number().min(0).max(1).default(0),
  epoch: z.number().int().optional(),
  epochs: z.number().int().optional(),
  /** Latest training figures, e.g. loss, val_loss, val_acc. */
  metrics: z.record(z.string(), z.number()).default({}),
  /** Figures per training epoch so far (`epoch` is 1-based), at most MAX_JOB_HISTORY, thinned evenly beyond. */
  history: z.array(EpochLogsSchema).max(MAX_JOB_HISTORY).optional(),
  /** Version published by this job once it succeeded. */
  version: z.string().optional(),
  /** Whether the alias `latest` moved to that version (see the promotion gate). */
  promoted: z.boolean().optional(),
  /** Why the version was or was not promoted (the gate's one-sentence verdict). */
  promotionReason: z.string().optional(),
  /** The representation search's leaderboard, once the job has searched (shared/ml/search.ts). */
  search: SearchReportSchema.optional(),
  /** Id the job runner gave the job (AWS Batch job id, or the local child's id). */
  runnerJobId: z.string().optional(),
  /** `partial`: some images were in the embedding cache, the others went through the base. */
  embeddingCache: z.enum(['hit', 'miss', 'partial']).optional(),
  /** Records used and skipped (corrupt, unsupported, missing files), set once the data is prepared. */
  records: RecordsSummarySchema.optional(),
  /** Why the job failed: a code of the one vocabulary (older lower-case codes read back mapped to it). */
  error: StoredErrorBodySchema.optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type JobStatus = z.infer<typeof JobStatusSchema>;
