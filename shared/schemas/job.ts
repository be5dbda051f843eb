import { z } from 'zod';

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
  /** Version published by this job once it succeeded. */
  version: z.string().optional(),
  /** Whether the alias `latest` moved to that version (see the promotion gate). */
  promoted: z.boolean().optional(),
  /** Why the version was or was not promoted (the gate's one-sentence verdict). */
  promotionReason: z.string().optional(),
  /** Id the job runner gave the job (AWS Batch job id, or the local child's id). */
  runnerJobId: z.string().optional(),
  embeddingCache: z.enum(['hit', 'miss']).optional(),
  error: z.strictObject({ code: z.string(), message: z.string() }).optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type JobStatus = z.infer<typeof JobStatusSchema>;
