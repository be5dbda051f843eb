import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { withCors } from '../../shared/http/cors.js';
import { ApiError, errorResult, json, parseBody, routeKey, unexpectedErrorResult } from '../../shared/http/api.js';
import { retryingLazy } from '../../shared/lazy.js';
import { createObservability, observeApi } from '../../shared/observability.js';
import { loadEnv, PlatformEnvSchema } from '../../shared/schemas/env.js';
import { UploadRequestSchema } from '../../shared/schemas/predict.js';
import { createStore } from '../../shared/wiring.js';
import { createUploads, type UploadsDeps } from './core.js';

/** `POST /datasets/{dataset}/uploads`: parses the request, calls the core, maps errors to the API's error body. */
export function createHandler(deps: UploadsDeps | (() => Promise<UploadsDeps>), log: (msg: string, err?: unknown) => void = console.error) {
  // Built on the first request, and again on the next one if that failed.
  const getDeps = retryingLazy(() => (typeof deps === 'function' ? deps() : Promise.resolve(deps)));
  return async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
    try {
      if (routeKey(event) !== 'POST /datasets/{dataset}/uploads') throw new ApiError(404, 'NOT_FOUND', `no route ${event.httpMethod} ${event.path}`);
      const body = parseBody(event, UploadRequestSchema);
      return json(200, await createUploads(event.pathParameters?.dataset ?? '', body, await getDeps()));
    } catch (err) {
      if (err instanceof ApiError) return errorResult(err);
      log('uploads: unexpected error', err);
      return unexpectedErrorResult(err);
    }
  };
}

// The dashboard, served from its own origin (CloudFront), reads these answers: CORS for that origin only.
export const handler = withCors(
  observeApi(
    createHandler(async () => ({ store: await createStore(loadEnv(PlatformEnvSchema)) })),
    () => createObservability('uploads'),
  ),
);
