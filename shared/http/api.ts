import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { z } from 'zod';
import { UserError } from '../errors.js';
import type { ErrorCode } from '../schemas/errors.js';

/**
 * Shared by the API handlers: error mapping and JSON responses in the shape of
 * the design's contract, `{"error":{"code","message"}}`. Bad input is never a 500.
 */
export class ApiError extends UserError {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    code: ErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}

/** Lambda's synchronous payload limit; the local server enforces the same. */
export const MAX_REQUEST_BYTES = 6 * 1024 * 1024;

/**
 * A storage fault the client can do nothing about but wait (full or read-only
 * disk, exhausted quota): 507 or 503 with the JSON error, never a bare 500.
 * Looks through `cause` chains; undefined for any other error.
 */
export function storageErrorStatus(err: unknown): { status: number; code: ErrorCode; message: string } | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT')
      return { status: 507, code: 'INSUFFICIENT_STORAGE', message: "the platform's storage is full; nothing was stored. Try again once space is freed" };
    if (code === 'EROFS')
      return { status: 503, code: 'STORAGE_UNAVAILABLE', message: "the platform's storage is read-only right now; nothing was stored. Try again later" };
  }
  return undefined;
}

/** Maps an unexpected error of a handler: storage faults to 507/503, anything else to 500 INTERNAL (details go to the logs). */
export function unexpectedErrorResult(err: unknown): APIGatewayProxyResult {
  const storage = storageErrorStatus(err);
  return errorResult(
    storage ? new ApiError(storage.status, storage.code, storage.message) : new ApiError(500, 'INTERNAL', 'internal error; see the function logs'),
  );
}

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
