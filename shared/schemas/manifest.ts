import { z } from 'zod';

export const LabelValueSchema = z.union([
  z.string().min(1).max(200), // classification
  z.array(z.string().min(1).max(200)).max(200), // multilabel
  z.number().finite(), // scalar regression
  z.array(z.number().finite()).min(1).max(1024), // vector regression
]);
export type LabelValue = z.infer<typeof LabelValueSchema>;

/** One line of `manifest.jsonl`. A record may leave out some tasks. */
export const ManifestLineSchema = z.strictObject({
  /** Key relative to the dataset folder, e.g. `images/001.jpg`. */
  source: z
    .string()
    .min(1)
    .max(1024)
    .refine((s) => !s.startsWith('/') && !s.split('/').includes('..'), 'source must stay inside the dataset'),
  labels: z.record(z.string(), LabelValueSchema.nullable()).default({}),
});
export type ManifestLine = z.infer<typeof ManifestLineSchema>;
