import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { ApiError, errorResult, json, parseBody, routeKey } from '../../shared/http/api.js';
import { PredictRequestSchema } from '../../shared/schemas/predict.js';
import { createDeps } from '../../shared/wiring.js';
import { describeModel, latestJob, listModelSummaries, predict, rollback, type ApiDeps } from './core.js';
import { createModelCache } from './model-cache.js';

type Route = (event: APIGatewayProxyEvent, deps: ApiDeps) => Promise<APIGatewayProxyResult>;

const param = (event: APIGatewayProxyEvent, name: string) => event.pathParameters?.[name] ?? '';

const routes: Record<string, Route> = {
  'GET /models': async (_e, deps) => json(200, await listModelSummaries(deps)),
  'GET /models/{model}': async (e, deps) => json(200, await describeModel(param(e, 'model'), deps, e.queryStringParameters?.version)),
  'GET /models/{model}/job': async (e, deps) => json(200, await latestJob(param(e, 'model'), deps)),
  'POST /models/{model}/predict': async (e, deps) => json(200, await predict(param(e, 'model'), parseBody(e, PredictRequestSchema), deps)),
  'POST /models/{model}/rollback': async (e, deps) => json(200, await rollback(param(e, 'model'), deps)),
};

/** The inference API: predict and model information, behind API Gateway or the local server. */
export function createHandler(deps: ApiDeps | (() => Promise<ApiDeps>), log: (msg: string, err?: unknown) => void = console.error) {
  let ready: Promise<ApiDeps> | undefined;
  const getDeps = () => (ready ??= typeof deps === 'function' ? deps() : Promise.resolve(deps));
  return async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
    const route = routes[routeKey(event)];
    try {
      if (!route) throw new ApiError(404, 'NOT_FOUND', `no route ${event.httpMethod} ${event.path}`);
      return await route(event, await getDeps());
    } catch (err) {
      if (err instanceof ApiError) return errorResult(err);
      log(`predict: unexpected error on ${event.httpMethod} ${event.path}`, err);
      return errorResult(new ApiError(500, 'INTERNAL', 'internal error; see the function logs'));
    }
  };
}

/** Lambda entry: deps are built once per container, on the first request. */
export const handler = createHandler(async () => {
  const { env, store } = await createDeps();
  return { store, models: createModelCache(store, { capacity: env.MODEL_CACHE_SIZE }) };
});
