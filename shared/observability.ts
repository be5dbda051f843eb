/**
 * Structured logs and metrics of the Lambda entry points, with Powertools for AWS
 * Lambda: Logger writes one JSON object per line (service, tenant, request id and
 * whatever a handler appends: model, version, job id), Metrics writes CloudWatch
 * embedded-metric-format (EMF) lines that CloudWatch turns into metrics without API
 * calls. Only the `handler` exports use this; the cores and the embedded default
 * take plain functions, so tests and the local platform stay quiet.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';

/** CloudWatch namespace of every platform metric. */
export const METRICS_NAMESPACE = 'TransferLearningPlatform';

export interface Observability {
  logger: Logger;
  metrics: Metrics;
}

/**
 * One Logger and one Metrics per function. `TL_TENANT` (set by the stack) becomes a
 * log key and a metric dimension, so one account's tenants stay apart in both.
 */
export function createObservability(service: string, env: NodeJS.ProcessEnv = process.env): Observability {
  const tenant = env.TL_TENANT ?? 'local';
  const logger = new Logger({ serviceName: service, persistentKeys: { tenant } });
  const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: service, defaultDimensions: { tenant } });
  return { logger, metrics };
}

type ApiHandler = (event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult>;

/** The error code of a platform error body, or undefined. */
function errorCodeOf(body: string | undefined): string | undefined {
  try {
    const code = (JSON.parse(body ?? '') as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Wraps an API Gateway handler: a log line per request (route, status, latency,
 * error code), and metrics `Requests`, `Latency` (per route), `Errors` (per error
 * code) and, for predictions, `Predictions` and `InstancesPerCall` with the model.
 */
export function observeApi(
  handler: ApiHandler,
  observability: Observability | (() => Observability),
): (event: APIGatewayProxyEvent, context?: Context) => Promise<APIGatewayProxyResult> {
  let built: Observability | undefined;
  return async (event, context) => {
    // Built on the first request (cold start), not at import: the local platform imports these modules too.
    built ??= typeof observability === 'function' ? observability() : observability;
    const { logger, metrics } = built;
    const started = performance.now();
    const route = `${event.httpMethod} ${event.resource}`;
    const model = event.pathParameters?.model;
    logger.appendKeys({ requestId: event.requestContext?.requestId ?? context?.awsRequestId, route, model });
    try {
      const result = await handler(event);
      const latencyMs = performance.now() - started;
      const code = result.statusCode >= 400 ? errorCodeOf(result.body) : undefined;
      metrics.addDimensions({ route });
      metrics.addMetric('Requests', MetricUnit.Count, 1);
      metrics.addMetric('Latency', MetricUnit.Milliseconds, latencyMs);
      if (code) metrics.singleMetric().addDimensions({ route, code }).addMetric('Errors', MetricUnit.Count, 1);
      if (route === 'POST /models/{model}/predict' && result.statusCode === 200) {
        const body = JSON.parse(result.body) as { version?: string; predictions?: unknown[] };
        const instances = body.predictions?.length ?? 0;
        logger.appendKeys({ version: body.version });
        metrics
          .singleMetric()
          .addDimensions({ model: model ?? '' })
          .addMetric('Predictions', MetricUnit.Count, instances);
        metrics.addMetric('InstancesPerCall', MetricUnit.Count, instances);
      }
      const log = result.statusCode >= 500 ? logger.error.bind(logger) : logger.info.bind(logger);
      log('request', { status: result.statusCode, latencyMs: Math.round(latencyMs), code });
      return result;
    } finally {
      metrics.publishStoredMetrics();
      logger.removeKeys(['requestId', 'route', 'model', 'version']);
    }
  };
}
