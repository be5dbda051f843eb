import { z } from 'zod';
import { CutSchema } from './base-model.js';
import { TaskTypeSchema, TrainSpecSchema } from './spec.js';

export const TaskHeadSchema = z.strictObject({
  name: z.string(),
  type: TaskTypeSchema,
  auxiliary: z.boolean(),
  /** Class names in output order (classification, multilabel). */
  labels: z.array(z.string()).optional(),
  /** Per-label decision thresholds (multilabel). */
  thresholds: z.array(z.number()).optional(),
  /** Output length (regression). */
  size: z.number().int().optional(),
  /** Standardisation of regression targets: prediction = output * std + mean. */
  mean: z.array(z.number()).optional(),
  std: z.array(z.number()).optional(),
});
export type TaskHead = z.infer<typeof TaskHeadSchema>;

export const InputSpecSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('image'),
    /** [height, width, channels] the preprocessor resizes to. */
    shape: z.tuple([z.number().int(), z.number().int(), z.number().int()]),
  }),
  z.strictObject({
    type: z.literal('vector'),
    size: z.number().int().positive(),
    /**
     * Standardisation fitted on the train split: the model reads (x − mean) / std, and
     * a missing value (null) as the train mean. Absent: features are read as given.
     */
    mean: z.array(z.number()).optional(),
    std: z.array(z.number()).optional(),
  }),
]);
export type InputSpec = z.infer<typeof InputSpecSchema>;

/** `models/<model>/<version>/metadata.json`. */
export const ModelMetadataSchema = z.strictObject({
  model: z.string(),
  version: z.string(),
  createdAt: z.string(),
  /** `train` for a trained head, `prototype` for a nearest-class-mean model. */
  kind: z.enum(['train', 'prototype']),
  input: InputSpecSchema,
  /** Which frozen embedder feeds the stored model (`none` means it reads the inputs directly). */
  base: z.strictObject({
    name: z.string(),
    embeddingSize: z.number().int().optional(),
    /**
     * Where the frozen embedder is cut when it is not the base's own embedding layer:
     * a fine-tuned model stores the unfrozen top of the base, so its embedder stops
     * lower (at the input of that top part). For a `model:` base, a layer of that model.
     * With `concat`, the stored model reads several cuts of one pass side by side.
     */
    cut: CutSchema.optional(),
    /** Engine that ran the frozen part for this version (onnx: ONNX Runtime; both give the same embeddings to ~1e-5). */
    engine: z.enum(['onnx', 'tfjs']).optional(),
  }),
  tasks: z.array(TaskHeadSchema).min(1),
  dataset: z.strictObject({ name: z.string(), hash: z.string() }),
  spec: TrainSpecSchema,
  jobId: z.string().optional(),
  /** Test-split metrics per task, plus anything a job adds (baselines, ablations). */
  metrics: z.record(z.string(), z.unknown()).default({}),
});
export type ModelMetadata = z.infer<typeof ModelMetadataSchema>;

/** `models/<model>/aliases/<alias>.json`. */
export const AliasSchema = z.strictObject({
  version: z.string(),
  previous: z.string().optional(),
  updatedAt: z.string().optional(),
});
export type Alias = z.infer<typeof AliasSchema>;
