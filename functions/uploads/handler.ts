import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { ApiError, errorResult, json, parseBody, routeKey } from '../../shared/http/api.js';
import type { ObjectStore } from '../../shared/ports/object-store.js';
import { NameSchema } from '../../shared/schemas/common.js';
import { UploadRequestSchema, type UploadRequest, type UploadResponse } from '../../shared/schemas/predict.js';
import { createStore } from '../../shared/wiring.js';
import { loadEnv, PlatformEnvSchema } from '../../shared/schemas/env.js';

/** How long a handed-out upload URL stays valid. */
export const UPLOAD_URL_TTL_SECONDS = 15 * 60;

/**
 * Hands out one signed PUT URL per file of a dataset, so apps upload straight to
 * the bucket (S3 presigned URLs in the cloud, the local server's signed URLs on
 * the embedded default) and `train.json`, uploaded last, starts processing.
 */
export async function createUploads(dataset: string, request: UploadRequest, deps: { store: ObjectStore }): Promise<UploadResponse> {
  if (!NameSchema.safeParse(dataset).success) throw new ApiError(400, 'INVALID_DATASET_NAME', `invalid dataset name ${JSON.stringify(dataset)}: use letters, digits, "-" or "_"`);
  const uploads = await Promise.all(
    request.files.map(async (f) => {
      const key = `datasets/${dataset}/${f.path}`;
      const signed = await deps.store.presignPut(key, { expiresIn: UPLOAD_URL_TTL_SECONDS, contentType: f.contentType });
      return { path: f.path, key, method: 'PUT' as const, url: signed.url, headers: signed.headers };
    }),
  );
  return { dataset, uploads, expiresIn: UPLOAD_URL_TTL_SECONDS };
}

export function createHandler(deps: { store: ObjectStore } | (() => Promise<{ store: ObjectStore }>), log: (msg: string, err?: unknown) => void = console.error) {
  let ready: Promise<{ store: ObjectStore }> | undefined;
  const getDeps = () => (ready ??= typeof deps === 'function' ? deps() : Promise.resolve(deps));
  return async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
    try {
      if (routeKey(event) !== 'POST /datasets/{dataset}/uploads') throw new ApiError(404, 'NOT_FOUND', `no route ${event.httpMethod} ${event.path}`);
      const body = parseBody(event, UploadRequestSchema);
      return json(200, await createUploads(event.pathParameters?.dataset ?? '', body, await getDeps()));
    } catch (err) {
      if (err instanceof ApiError) return errorResult(err);
      log('uploads: unexpected error', err);
      return errorResult(new ApiError(500, 'INTERNAL', 'internal error; see the function logs'));
    }
  };
}

export const handler = createHandler(async () => ({ store: await createStore(loadEnv(PlatformEnvSchema)) }));
