import { z } from 'zod';

/**
 * A regression value: finite, and finite as float32 too, since training holds targets
 * in float32 (1e39 would become Infinity there and surface as "training diverged").
 */
const RegressionValueSchema = z
  .number()
  .finite()
  .refine((v) => Number.isFinite(Math.fround(v)), 'a regression value must fit in float32 (magnitude at most about 3.4e38)');

export const LabelValueSchema = z.union([
  z.string().min(1).max(200), // classification
  z.array(z.string().min(1).max(200)).max(200), // multilabel
  RegressionValueSchema, // scalar regression
  z.array(RegressionValueSchema).min(1).max(1024), // vector regression
]);
export type LabelValue = z.infer<typeof LabelValueSchema>;

/** Labels of a record per task; a task left out or null has no label. */
export const LabelsSchema = z.record(z.string(), LabelValueSchema.nullable());

/** One line of `manifest.jsonl`. A record may leave out some tasks. */
export const ManifestLineSchema = z.strictObject({
  /** Key relative to the dataset folder, e.g. `images/001.jpg`. */
  source: z
    .string()
    .min(1)
    .max(1024)
    .refine((s) => !s.startsWith('/') && !s.split('/').includes('..'), 'source must stay inside the dataset'),
  labels: LabelsSchema.default({}),
});
export type ManifestLine = z.infer<typeof ManifestLineSchema>;
