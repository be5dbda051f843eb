import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { withCors } from '../../shared/http/cors.js';
import { ApiError, errorResult, json, parseBody, routeKey, unexpectedErrorResult } from '../../shared/http/api.js';
import { PredictRequestSchema, PromoteRequestSchema } from '../../shared/schemas/predict.js';
import { retryingLazy } from '../../shared/lazy.js';
import { createObservability, observeApi } from '../../shared/observability.js';
import { preferShortGcPauses } from '../../shared/heap.js';
import { createDeps } from '../../shared/wiring.js';
import { describeModel, exportModel, latestJob, modelCard, listModelSummaries, predict, rollback, type ApiDeps } from './core.js';
import { createModelCache } from './model-cache.js';
import { listModelVersions, promoteVersion, versionDataset, versionReport } from './versions.js';

type Route = (event: APIGatewayProxyEvent, deps: ApiDeps) => Promise<APIGatewayProxyResult>;

const param = (event: APIGatewayProxyEvent, name: string) => event.pathParameters?.[name] ?? '';

const routes: Record<string, Route> = {
  'GET /models': async (_e, deps) => json(200, await listModelSummaries(deps)),
  'GET /models/{model}': async (e, deps) => json(200, await describeModel(param(e, 'model'), deps, e.queryStringParameters?.version)),
  'GET /models/{model}/job': async (e, deps) => json(200, await latestJob(param(e, 'model'), deps)),
  'POST /models/{model}/predict': async (e, deps) => json(200, await predict(param(e, 'model'), parseBody(e, PredictRequestSchema), deps)),
  'POST /models/{model}/rollback': async (e, deps) => json(200, await rollback(param(e, 'model'), deps)),
  'POST /models/{model}/promote': async (e, deps) => json(200, await promoteVersion(param(e, 'model'), parseBody(e, PromoteRequestSchema).version, deps)),
  'GET /models/{model}/versions': async (e, deps) => json(200, await listModelVersions(param(e, 'model'), deps)),
  'GET /models/{model}/versions/{version}/report': async (e, deps) => json(200, await versionReport(param(e, 'model'), param(e, 'version'), deps)),
  'GET /models/{model}/versions/{version}/dataset': async (e, deps) => json(200, await versionDataset(param(e, 'model'), param(e, 'version'), deps)),
  'GET /models/{model}/card': async (e, deps) => ({
    statusCode: 200,
    headers: { 'content-type': 'text/markdown; charset=utf-8' },
    body: await modelCard(param(e, 'model'), deps, e.queryStringParameters?.version),
  }),
  'GET /models/{model}/export': async (e, deps) => {
    const q = e.queryStringParameters ?? {};
    const { bytes, filename } = await exportModel(param(e, 'model'), { format: q.format, version: q.version, tasks: q.tasks }, deps);
    return {
      statusCode: 200,
      headers: { 'content-type': 'application/octet-stream', 'content-disposition': `attachment; filename="${filename}"` },
      body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'),
      isBase64Encoded: true,
    };
  },
};

/** The inference API: predict and model information, behind API Gateway or the local server. */
export function createHandler(deps: ApiDeps | (() => Promise<ApiDeps>), log: (msg: string, err?: unknown) => void = console.error) {
  // Built on the first request, and again on the next one if that failed.
  const getDeps = retryingLazy(() => (typeof deps === 'function' ? deps() : Promise.resolve(deps)));
  return async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
    const route = routes[routeKey(event)];
    try {
      if (!route) throw new ApiError(404, 'NOT_FOUND', `no route ${event.httpMethod} ${event.path}`);
      return await route(event, await getDeps());
    } catch (err) {
      if (err instanceof ApiError) return errorResult(err);
      log(`predict: unexpected error on ${event.httpMethod} ${event.path}`, err);
      return unexpectedErrorResult(err);
    }
  };
}

/**
 * Lambda entry: deps are built once per container, on the first request; logs and metrics per request.
 * The dashboard, served from its own origin (CloudFront), reads these answers: CORS for that origin only.
 */
export const handler = withCors(
  observeApi(
    createHandler(async () => {
      // This container serves predictions: rare full GC pauses (heap.ts). At cold start with the
      // other settings, not at import: the local platform imports this module too.
      preferShortGcPauses();
      const { env, store } = await createDeps();
      return { store, models: createModelCache(store, { capacity: env.MODEL_CACHE_SIZE }) };
    }),
    () => createObservability('predict'),
  ),
);
