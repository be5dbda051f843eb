/**
 * Structured logs and metrics, with Powertools for AWS Lambda: Logger writes one
 * JSON object per line (service, tenant, request id and whatever the caller
 * appends: model, version, job id), Metrics writes CloudWatch embedded-metric-format
 * (EMF) lines that CloudWatch turns into metrics without API calls.
 *
 * The Lambda `handler` exports and the training job's entry point use them; the
 * embedded default logs the same structure through `structuredLog` (one `request`
 * line per API call with the same keys as on Lambda, the job's own lines passed
 * through as they are), indented for people when it runs in a terminal
 * (`POWERTOOLS_DEV`, Powertools' own switch). The cores take plain functions, so
 * tests stay quiet.
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

/** Attributes of a structured log line; an `error` that is an Error makes it an ERROR line with the error's name, message and stack. */
export type LogAttributes = Record<string, unknown> & { error?: unknown };

/** Where the embedded platform and the job write their lines: a message and its attributes. */
export type LogFn = (message: string, attributes?: LogAttributes) => void;

/** A LogFn over a Powertools Logger. */
export function structuredLog(logger: Logger): LogFn {
  return (message, attributes = {}) => {
    // Powertools' JSON replacer writes an Error as its name, message and stack.
    if (attributes.error instanceof Error) logger.error(message, attributes);
    else logger.info(message, attributes);
  };
}

/** What a request log line says of an API answer: its error code, and for a prediction the version and the number of instances. */
export function describeAnswer(
  route: string,
  result: Pick<APIGatewayProxyResult, 'statusCode' | 'body'>,
): { code?: string; version?: string; instances?: number } {
  if (result.statusCode >= 400) {
    const code = errorCodeOf(result.body);
    return code ? { code } : {};
  }
  if (route !== PREDICT_ROUTE || result.statusCode !== 200) return {};
  try {
    const body = JSON.parse(result.body) as { version?: string; predictions?: unknown[] };
    return { version: body.version, instances: body.predictions?.length ?? 0 };
  } catch {
    return {};
  }
}

const PREDICT_ROUTE = 'POST /models/{model}/predict';

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
      const { code, version, instances } = describeAnswer(route, result);
      metrics.addDimensions({ route });
      metrics.addMetric('Requests', MetricUnit.Count, 1);
      metrics.addMetric('Latency', MetricUnit.Milliseconds, latencyMs);
      if (code) metrics.singleMetric().addDimensions({ route, code }).addMetric('Errors', MetricUnit.Count, 1);
      if (instances !== undefined) {
        logger.appendKeys({ version });
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
