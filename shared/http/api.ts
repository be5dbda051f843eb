import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { z } from 'zod';

/**
 * Shared by the API handlers: error mapping and JSON responses in the shape of
 * the design's contract, `{"error":{"code","message"}}`. Bad input is never a 500.
 */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Lambda's synchronous payload limit; the local server enforces the same. */
export const MAX_REQUEST_BYTES = 6 * 1024 * 1024;

export function json(status: number, body: unknown, headers: Record<string, string> = {}): APIGatewayProxyResult {
  return { statusCode: status, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}

export function errorResult(err: ApiError): APIGatewayProxyResult {
  return json(err.status, { error: { code: err.code, message: err.message } });
}

/** A readable one-line summary of zod issues, naming each field. */
export function describeZodError(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`)
    .join('; ');
}

/** Parses a JSON request body with a schema; every failure is a 4xx ApiError. */
export function parseBody<S extends z.ZodType>(event: Pick<APIGatewayProxyEvent, 'body' | 'isBase64Encoded'>, schema: S): z.infer<S> {
  const raw = event.body ? (event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body) : '';
  if (Buffer.byteLength(raw) > MAX_REQUEST_BYTES) throw new ApiError(413, 'PAYLOAD_TOO_LARGE', `request body exceeds ${MAX_REQUEST_BYTES} bytes`);
  if (!raw) throw new ApiError(400, 'INVALID_REQUEST', 'request body is empty; send JSON');
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new ApiError(400, 'INVALID_JSON', 'request body is not valid JSON');
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ApiError(400, 'INVALID_REQUEST', describeZodError(parsed.error));
  return parsed.data;
}

/** Route key of an API Gateway REST proxy event, e.g. `POST /models/{model}/predict`. */
export function routeKey(event: Pick<APIGatewayProxyEvent, 'httpMethod' | 'resource'>): string {
  return `${event.httpMethod.toUpperCase()} ${event.resource}`;
}
