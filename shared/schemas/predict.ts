import { z } from 'zod';
import { isSafeRelativePath, VersionOrAliasSchema } from './common.js';

export const MAX_INSTANCES = 32;

export const InstanceSchema = z.union([
  z.strictObject({ image: z.string().min(1, 'image must be base64 data') }),
  /** null: a missing value, read as the train mean. */
  z.strictObject({ features: z.array(z.number().finite().nullable()).min(1).max(100_000) }),
]);
export type Instance = z.infer<typeof InstanceSchema>;

export const PredictRequestSchema = z.strictObject({
  instances: z.array(InstanceSchema).min(1, 'send at least one instance').max(MAX_INSTANCES, `send at most ${MAX_INSTANCES} instances per call`),
  /** Tasks to return; auxiliary tasks only when named here. @default every main task */
  tasks: z.array(z.string()).min(1, 'name at least one task, or leave "tasks" out for every main task').optional(),
  /** Scores to list per classification task. @default 3 */
  topK: z.number().int().min(1).max(100).default(3),
  /** A version or alias to call. @default "latest" */
  version: VersionOrAliasSchema.optional(),
});
export type PredictRequest = z.infer<typeof PredictRequestSchema>;

/** `POST /models/{model}/promote`: the version (or alias) that `latest` should point at. */
export const PromoteRequestSchema = z.strictObject({ version: VersionOrAliasSchema });
export type PromoteRequest = z.infer<typeof PromoteRequestSchema>;

export const ScoredLabelSchema = z.strictObject({ label: z.string(), score: z.number() });

export const TaskPredictionSchema = z.union([
  z.strictObject({ label: z.string(), score: z.number(), scores: z.array(ScoredLabelSchema) }),
  z.strictObject({ labels: z.array(z.string()), scores: z.array(ScoredLabelSchema) }),
  z.strictObject({ value: z.array(z.number()) }),
]);
export type TaskPrediction = z.infer<typeof TaskPredictionSchema>;

export const PredictResponseSchema = z.strictObject({
  model: z.string(),
  version: z.string(),
  predictions: z.array(z.record(z.string(), TaskPredictionSchema)),
});
export type PredictResponse = z.infer<typeof PredictResponseSchema>;

export const ErrorBodySchema = z.strictObject({
  error: z.strictObject({ code: z.string(), message: z.string() }),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** `POST /datasets/{dataset}/uploads`: ask where to PUT each file. */
export const UploadRequestSchema = z.strictObject({
  files: z
    .array(
      z.strictObject({
        path: z.string().min(1).max(1024).refine(isSafeRelativePath, 'path must be relative, with no empty, "." or ".." segment, backslash or NUL'),
        // Echoed into a signed Content-Type header: a CR or LF there would let a
        // client inject headers, so only a media type's printable characters pass.
        contentType: z
          .string()
          .max(200)
          .regex(
            /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(?:[ \t]*;[ \t]*[\w!#$&^.+-]+=(?:[\w!#$&^.+-]+|"[ !#-~]*"))*$/,
            'contentType must be a media type such as image/jpeg, with no control characters',
          )
          .optional(),
      }),
    )
    .min(1)
    .max(1000),
});
export type UploadRequest = z.infer<typeof UploadRequestSchema>;

export const UploadResponseSchema = z.strictObject({
  dataset: z.string(),
  uploads: z.array(z.strictObject({ path: z.string(), key: z.string(), method: z.literal('PUT'), url: z.string(), headers: z.record(z.string(), z.string()) })),
  expiresIn: z.number().int(),
});
export type UploadResponse = z.infer<typeof UploadResponseSchema>;
