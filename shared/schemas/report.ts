import { z } from 'zod';
import { TrainSpecSchema } from './spec.js';

export const SplitNameSchema = z.enum(['train', 'validation', 'test']);
export type SplitName = z.infer<typeof SplitNameSchema>;

export const SkippedFileSchema = z.strictObject({ key: z.string(), reason: z.string() });

export const ShardRefSchema = z.strictObject({ key: z.string(), split: SplitNameSchema, count: z.number().int().nonnegative() });

/** What preprocessing found in a dataset: `prepared/<dataset>/<hash>/report.json`. */
export const DatasetReportSchema = z.strictObject({
  dataset: z.string(),
  hash: z.string(),
  layout: z.enum(['folders', 'manifest']),
  spec: TrainSpecSchema,
  /** Per-record input shape after preprocessing, e.g. [224, 224, 3] or [n] for vectors. */
  inputShape: z.array(z.number().int().positive()),
  records: z.strictObject({ total: z.number().int(), used: z.number().int(), skipped: z.number().int() }),
  splits: z.record(SplitNameSchema, z.number().int().nonnegative()),
  /** Per task: how many records carry a label, and counts per class for classification tasks. */
  tasks: z.record(
    z.string(),
    z.strictObject({
      type: z.string(),
      labelled: z.number().int(),
      classes: z.record(z.string(), z.number().int()).optional(),
      size: z.number().int().optional(),
    }),
  ),
  skipped: z.array(SkippedFileSchema),
  shards: z.array(ShardRefSchema),
  createdAt: z.string(),
});
export type DatasetReport = z.infer<typeof DatasetReportSchema>;
