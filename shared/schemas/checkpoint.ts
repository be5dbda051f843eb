import { z } from 'zod';
import { EpochLogsSchema } from './metrics.js';

/** What a loss weighting carries across a resume (see shared/ml/loss-weighting.ts). */
export const WeightingStateSchema = z.strictObject({
  /** Uncertainty: learned s_t = log σ_t² per task. */
  logVariances: z.record(z.string(), z.number()).optional(),
  /** DWA: mean training loss per task of each finished epoch (the last two are used). */
  epochLosses: z.array(z.record(z.string(), z.number())).optional(),
  /** GradNorm: the learned weights w_t (they sum to the number of tasks). */
  taskWeights: z.record(z.string(), z.number()).optional(),
  /** GradNorm: each task's loss L_t(0) on the first batch that labelled it. */
  initialLosses: z.record(z.string(), z.number()).optional(),
});

/** The trainer's state between epochs; `best` is null in JSON before any improvement (JSON has no Infinity). */
export const TrainStateSchema = z.strictObject({
  /** Next epoch to run (0-based). */
  nextEpoch: z.number().int().nonnegative(),
  best: z
    .number()
    .nullable()
    .transform((b) => b ?? Infinity),
  bestEpoch: z.number().int(),
  /** Epochs since the best one. */
  wait: z.number().int().nonnegative(),
  history: z.array(EpochLogsSchema),
  weighting: WeightingStateSchema.optional(),
});

/** `jobs/<jobId>/checkpoint/state.json`: written last, after the epoch's weights. */
export const CheckpointManifestSchema = z.strictObject({
  /** Which architecture and labels the weights belong to; a mismatch means start over. */
  fingerprint: z.string(),
  /** Key prefix of this epoch's weights (`…/e<epoch>`). */
  weightsPrefix: z.string(),
  state: TrainStateSchema,
});
export type CheckpointManifest = z.input<typeof CheckpointManifestSchema>;
