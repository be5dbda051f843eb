import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { CorsEnvSchema, loadEnv } from '../schemas/env.js';

type ProxyHandler = (event: APIGatewayProxyEvent, context?: Context) => Promise<APIGatewayProxyResult>;

/**
 * Adds `Access-Control-Allow-Origin: <origin>` to every answer of a Lambda proxy
 * handler, errors included, so the dashboard can read the platform's error body.
 * API Gateway answers the preflight (OPTIONS) itself; with a proxy integration the
 * other headers must come from the function. The origin is read once, on the first
 * request (cold start), with `CorsEnvSchema`; without one, answers are unchanged.
 */
export function withCors(
  handler: ProxyHandler,
  origin: string | undefined | (() => string | undefined) = () => loadEnv(CorsEnvSchema).TL_ALLOWED_ORIGIN,
): ProxyHandler {
  let resolved: { origin: string | undefined } | undefined;
  return async (event, context) => {
    resolved ??= { origin: typeof origin === 'function' ? origin() : origin };
    const result = await handler(event, context);
    if (!resolved.origin) return result;
    return {
      ...result,
      headers: {
        ...result.headers,
        'access-control-allow-origin': resolved.origin,
        // Caches must not hand this answer to a page of another origin.
        vary: 'Origin',
        // The export's file name, for a download started from the page.
        'access-control-expose-headers': 'content-disposition',
      },
    };
  };
}
