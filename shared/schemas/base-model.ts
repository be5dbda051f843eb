import { z } from 'zod';

/** `base-models/<name>/descriptor.json`: how to feed a base model and where to cut it. */
const LayerCutSchema = z.strictObject({ layer: z.string(), pooling: z.enum(['none', 'avg']).default('none') });
/**
 * Where a base is cut: a layer, and whether its map is average-pooled to a vector; with
 * `concat`, the features of more cuts of the same forward pass follow, side by side in
 * that order (`layer`'s first), as one vector.
 */
export const CutSchema = LayerCutSchema.extend({ concat: z.array(LayerCutSchema).min(1).optional() });
export type Cut = z.output<typeof CutSchema>;

export const BaseModelDescriptorSchema = z.strictObject({
  name: z.string(),
  /** [height, width, channels] of the model input. */
  inputShape: z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]),
  /** Pixel scaling applied to uint8 RGB before the model: x * scale + offset (e.g. 1/255 and 0). */
  normalization: z.strictObject({ scale: z.number(), offset: z.number() }),
  /** Layer whose output is the embedding, and how it is pooled to a vector. */
  embedding: z.strictObject({
    layer: z.string(),
    pooling: z.enum(['none', 'avg']).default('none'),
    size: z.number().int().positive(),
  }),
  /**
   * Few-shot (prototype) models: other cuts leave-one-out accuracy chooses among (the
   * embedding layer is always a candidate, and wins ties), and the cut used when a
   * class has a single example and leave-one-out cannot choose (the embedding layer when absent).
   */
  fewShot: z
    .strictObject({
      candidates: z.array(CutSchema).default([]),
      fallback: CutSchema.optional(),
    })
    .optional(),
  /**
   * Representation search (shared/ml/search.ts): cuts tried beside the embedding layer,
   * which is always tried first. Without it a job keeps the embedding layer.
   */
  search: z.strictObject({ candidates: z.array(CutSchema).min(1) }).optional(),
  /** Key of the tfjs `model.json`, relative to the bucket. */
  modelKey: z.string(),
  provenance: z.strictObject({ source: z.string(), license: z.string().optional(), notes: z.string().optional() }),
});
export type BaseModelDescriptor = z.infer<typeof BaseModelDescriptorSchema>;
