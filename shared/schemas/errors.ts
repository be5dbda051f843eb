import { z } from 'zod';

/**
 * The one vocabulary of error codes the platform speaks: in a job's
 * `status.error.code` and in an HTTP error body `{"error":{"code","message"}}`.
 * UPPER_SNAKE, so a client matches one spelling whatever part answered.
 */
export const ErrorCodeSchema = z.enum([
  // Any part: a fault of the platform, not of the input; the detail is in the logs.
  'INTERNAL',
  // HTTP requests.
  'INVALID_REQUEST',
  'INVALID_JSON',
  'INVALID_PATH',
  'INVALID_INPUT',
  'INVALID_IMAGE',
  'INVALID_BASE64',
  'INVALID_MODEL_NAME',
  'INVALID_VERSION',
  'UNKNOWN_TASK',
  'NOT_FOUND',
  'MODEL_NOT_FOUND',
  'JOB_NOT_FOUND',
  'VERSION_NOT_FOUND',
  'REPORT_NOT_FOUND',
  'NO_PREVIOUS_VERSION',
  'METHOD_NOT_ALLOWED',
  'PAYLOAD_TOO_LARGE',
  // No longer sent (a missing key answers 403 INVALID_API_KEY, as API Gateway does); kept so
  // statuses and clients written against it still parse.
  'MISSING_API_KEY',
  'INVALID_API_KEY',
  // A mutating route (rollback, promote, uploads) called with a key other than the admin key (AWS).
  'ADMIN_KEY_REQUIRED',
  'INVALID_SIGNATURE',
  'TOO_MANY_REQUESTS',
  // API Gateway's usage plan (per-key rate and quota); the embedded default has neither.
  'THROTTLED',
  'QUOTA_EXCEEDED',
  'BAD_REQUEST',
  'HEADERS_TOO_LARGE',
  'REQUEST_TIMEOUT',
  'MODEL_BROKEN',
  // Storage faults, for requests and jobs alike: a full disk or quota, a read-only disk.
  'INSUFFICIENT_STORAGE',
  'STORAGE_UNAVAILABLE',
  // Uploads and preprocessing.
  'INVALID_SPEC',
  'INVALID_DATASET_NAME',
  'INVALID_MANIFEST',
  'EMPTY_DATASET',
  'TOO_FEW_CLASSES',
  'TOO_FEW_EXAMPLES',
  'UNSUPPORTED_INPUT',
  'NO_USABLE_IMAGES',
  'UNKNOWN_BASE_MODEL',
  // The training job.
  'INVALID_DATASET',
  'INVALID_DATA',
  'MISSING_DATA',
  'NO_TRAIN_LABELS',
  'UNSUPPORTED_SPEC',
  'TRAINING_DIVERGED',
  'BASE_MODEL_ERROR',
  'JOB_CANCELLED',
  // The runner, about a job that ended without recording its own error.
  'JOB_CRASHED',
  'JOB_ORPHANED',
  'JOB_EXITED',
  'SPOT_RECLAIMED',
  'TIMEOUT',
  'CONTAINER_NEVER_STARTED',
  'OUT_OF_MEMORY',
  'BATCH_JOB_FAILED',
  // Batch cancelled a job that waited in RUNNABLE too long: no GPU capacity, or none that fits.
  'NO_CAPACITY',
]);
export type ErrorCode = z.infer<typeof ErrorCodeSchema>;

/** `{code, message}` as a job status and an HTTP error body carry it. */
export const ErrorBodySchema = z.strictObject({ code: ErrorCodeSchema, message: z.string() });
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/**
 * Codes of statuses written before the vocabulary was one: the training job wrote
 * lower-case codes (and `internal_error`, `cancelled`). Read back, they map to the
 * current spelling; anything else unknown becomes INTERNAL rather than failing the read.
 */
const LEGACY_CODES: Record<string, ErrorCode> = { internal_error: 'INTERNAL', cancelled: 'JOB_CANCELLED' };

/** An error body as stored by any version of the platform. */
export const StoredErrorBodySchema = z.strictObject({
  code: z.string().transform((code): ErrorCode => {
    const upper = code.toUpperCase();
    return LEGACY_CODES[code] ?? (ErrorCodeSchema.safeParse(upper).success ? (upper as ErrorCode) : 'INTERNAL');
  }),
  message: z.string(),
});
