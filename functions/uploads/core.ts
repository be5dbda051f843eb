/**
 * Hands out one signed PUT URL per file of a dataset, so apps upload straight to
 * the bucket (S3 presigned URLs in the cloud, the local server's signed URLs on
 * the embedded default) and `train.json`, uploaded last, starts processing.
 */
import { ApiError } from '../../shared/http/api.js';
import type { ObjectStore } from '../../shared/ports/object-store.js';
import { NameSchema } from '../../shared/schemas/common.js';
import type { UploadRequest, UploadResponse } from '../../shared/schemas/predict.js';

/** How long a handed-out upload URL stays valid. */
export const UPLOAD_URL_TTL_SECONDS = 15 * 60;

export interface UploadsDeps {
  store: ObjectStore;
}

export async function createUploads(dataset: string, request: UploadRequest, deps: UploadsDeps): Promise<UploadResponse> {
  if (!NameSchema.safeParse(dataset).success)
    throw new ApiError(400, 'INVALID_DATASET_NAME', `invalid dataset name ${JSON.stringify(dataset)}: use letters, digits, "-" or "_"`);
  const uploads = await Promise.all(
    request.files.map(async (f) => {
      const key = `datasets/${dataset}/${f.path}`;
      const signed = await deps.store.presignPut(key, { expiresIn: UPLOAD_URL_TTL_SECONDS, contentType: f.contentType });
      return { path: f.path, key, method: 'PUT' as const, url: signed.url, headers: signed.headers };
    }),
  );
  return { dataset, uploads, expiresIn: UPLOAD_URL_TTL_SECONDS };
}
