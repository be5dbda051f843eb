import { z } from 'zod';

/** A variable set to nothing (`X= npm start`) counts as unset, not as 0. */
const unsetWhenEmpty = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);

/**
 * Which engine runs the frozen part of models (shared/ml/onnx/runtime.ts):
 * `auto` prefers onnxruntime-node and falls back to tfjs when it cannot load.
 */
export const EngineEnvSchema = z.object({
  /** @default "auto" */
  TL_ENGINE: z.enum(['auto', 'onnx', 'tfjs']).default('auto'),
  /** Intra-op threads of each ONNX Runtime session. @default the cores available */
  TL_ONNX_THREADS: z.preprocess(unsetWhenEmpty, z.coerce.number().int().min(1).max(256).optional()),
});
export type EngineEnv = z.infer<typeof EngineEnvSchema>;

/**
 * Head room V8 leaves the serving process's heap before a full collection, as a percentage
 * of the live heap (shared/heap.ts); 0 gives V8 its own choice. V8 caps the factor at 4, so
 * at most 300.
 */
export const HeapEnvSchema = z.object({
  /** @default 50 */
  TL_HEAP_GROWING_PERCENT: z.preprocess(unsetWhenEmpty, z.coerce.number().int().min(0).max(300).default(50)),
});
export type HeapEnv = z.infer<typeof HeapEnvSchema>;

/**
 * Environment of every handler and of the training job. Validated once, at cold
 * start, by `loadEnv`. Local runs use a folder as the bucket and child processes
 * as jobs; the cloud uses S3 and AWS Batch.
 */
export const PlatformEnvSchema = z
  .object({
    /** @default "local" */
    STORE_KIND: z.enum(['local', 's3']).default('local'),
    /** Folder that plays the bucket (local). */
    BUCKET_DIR: z.string().min(1).optional(),
    /** Bucket name (s3). */
    BUCKET_NAME: z.string().min(3).optional(),
    /** @default "local" */
    JOB_RUNNER: z.enum(['local', 'batch']).default('local'),
    JOB_QUEUE: z.string().min(1).optional(),
    JOB_DEFINITION: z.string().min(1).optional(),
    /** Models kept in memory by the predict function. @default 4 */
    MODEL_CACHE_SIZE: z.coerce.number().int().min(1).max(64).default(4),
    /** Base URL of the local platform, used to hand out upload URLs. */
    TL_PUBLIC_URL: z.string().url().optional(),
    /** Secret that signs local upload URLs. */
    TL_UPLOAD_SECRET: z.string().min(16).optional(),
    /** Tests of full and read-only disks (local store only): see `FsObjectStoreOptions.faultFile`. */
    TL_FS_FAULT_FILE: z.string().min(1).optional(),
  })
  .extend(EngineEnvSchema.shape)
  .superRefine((env, ctx) => {
    if (env.STORE_KIND === 'local' && !env.BUCKET_DIR) ctx.addIssue({ code: 'custom', path: ['BUCKET_DIR'], message: 'required when STORE_KIND=local' });
    if (env.STORE_KIND === 's3' && !env.BUCKET_NAME) ctx.addIssue({ code: 'custom', path: ['BUCKET_NAME'], message: 'required when STORE_KIND=s3' });
    if (env.JOB_RUNNER === 'batch' && (!env.JOB_QUEUE || !env.JOB_DEFINITION))
      ctx.addIssue({ code: 'custom', path: ['JOB_QUEUE'], message: 'JOB_QUEUE and JOB_DEFINITION are required when JOB_RUNNER=batch' });
  });
export type PlatformEnv = z.infer<typeof PlatformEnvSchema>;

/**
 * The one browser origin allowed to read the API's answers: the tenant's dashboard
 * (`https://<distribution>.cloudfront.net` on AWS). Unset on the embedded default,
 * where the dashboard and the API share an origin and no CORS header is needed.
 */
export const CorsEnvSchema = z.object({
  TL_ALLOWED_ORIGIN: z
    .string()
    .url()
    // An origin is scheme, host and port: no path, and never the `*` wildcard.
    .refine(
      (value) => URL.canParse(value) && new URL(value).origin === value,
      'must be an origin such as https://d111111abcdef8.cloudfront.net (no path, no trailing slash)',
    )
    .optional(),
});
export type CorsEnv = z.infer<typeof CorsEnvSchema>;

/** What a training job gets besides the platform environment (Batch parameters or a child's env). */
export const TrainJobEnvSchema = z.object({
  TL_JOB_ID: z.string().min(1),
  /** `prepared/<dataset>/<hash>`: where the shards and the dataset report are. */
  TL_PREPARED_PREFIX: z.string().regex(/^prepared\/[^/]+\/[0-9a-f]+$/),
});
export type TrainJobEnv = z.infer<typeof TrainJobEnvSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses an environment with a schema and throws one readable error listing every problem. */
export function loadEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const result = schema.safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`invalid environment:\n  ${lines.join('\n  ')}`);
  }
  return result.data;
}
