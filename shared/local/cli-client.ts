import { ErrorBodySchema } from '../schemas/predict.js';

/** What every CLI command needs to talk to a platform. */
export interface Connection {
  /** Base URL of the platform, e.g. `http://127.0.0.1:8080`. */
  endpoint: string;
  /** Sent as `x-api-key` on every call to the platform's own origin. */
  apiKey?: string;
  /** Injected in tests. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** A command failed; `exitCode` is what the process should exit with. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Bad arguments: exit code 2, like most Unix tools. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

/** The platform answered with an error body (or a non-JSON error). */
export class ApiError extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(`${detail} (${code}, HTTP ${status})`);
    this.name = 'ApiError';
  }
}

/** No TCP connection could be made: the most common mistake is a platform that is not running. */
export class EndpointUnreachableError extends CliError {
  constructor(
    readonly endpoint: string,
    cause: unknown,
  ) {
    super(`cannot reach ${endpoint}: is \`npm start\` running?${describeCause(cause)}`);
    this.name = 'EndpointUnreachableError';
  }
}

function describeCause(cause: unknown): string {
  const code = networkErrorCode(cause);
  return code ? ` (${code})` : '';
}

/** Node's fetch hides the socket error in `cause`, sometimes inside an AggregateError. */
function networkErrorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current && typeof current === 'object'; depth++) {
    const { code, errors, cause } = current as { code?: unknown; errors?: unknown[]; cause?: unknown };
    if (typeof code === 'string' && code.startsWith('E')) return code;
    current = Array.isArray(errors) && errors.length > 0 ? errors[0] : cause;
  }
  return undefined;
}

/** Trailing slashes would double up when paths are appended. */
export function normaliseEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new UsageError(`--endpoint must be an http(s) URL, got "${endpoint}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--endpoint must be an http(s) URL, got "${endpoint}"`);
  }
  return url.href.replace(/\/+$/, '');
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT';
  body?: unknown;
}

/**
 * Calls the platform and returns the parsed JSON body.
 * Throws {@link ApiError} for 4xx/5xx and {@link EndpointUnreachableError} when nothing listens.
 */
export async function callApi<T = unknown>(conn: Connection, path: string, options: RequestOptions = {}): Promise<T> {
  const doFetch = conn.fetch ?? globalThis.fetch;
  const endpoint = normaliseEndpoint(conn.endpoint);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (conn.apiKey) headers['x-api-key'] = conn.apiKey;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await doFetch(`${endpoint}${path}`, {
      method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch (error) {
    throw new EndpointUnreachableError(endpoint, error);
  }
  const text = await response.text();
  if (!response.ok) throw toApiError(response.status, text);
  if (text.length === 0) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(response.status, 'BadResponse', `the platform answered ${path} with non-JSON: ${text.slice(0, 120)}`);
  }
}

/**
 * GETs a binary resource (the ONNX export) and returns its bytes.
 * Throws {@link ApiError} for 4xx/5xx and {@link EndpointUnreachableError} when nothing listens.
 */
export async function callApiBinary(conn: Connection, path: string): Promise<Buffer> {
  const doFetch = conn.fetch ?? globalThis.fetch;
  const endpoint = normaliseEndpoint(conn.endpoint);
  const headers: Record<string, string> = { accept: 'application/octet-stream' };
  if (conn.apiKey) headers['x-api-key'] = conn.apiKey;
  let response: Response;
  try {
    response = await doFetch(`${endpoint}${path}`, { method: 'GET', headers });
  } catch (error) {
    throw new EndpointUnreachableError(endpoint, error);
  }
  if (!response.ok) throw toApiError(response.status, await response.text());
  return Buffer.from(await response.arrayBuffer());
}

/** Turns an error response into an ApiError, keeping the platform's own code and message. */
export function toApiError(status: number, text: string): ApiError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const body = ErrorBodySchema.safeParse(parsed);
  if (body.success) return new ApiError(status, body.data.error.code, body.data.error.message);
  // S3 answers presigned-URL failures in XML: keep its <Code> and <Message>.
  const xmlCode = /<Code>([^<]+)<\/Code>/.exec(text)?.[1];
  const xmlMessage = /<Message>([^<]+)<\/Message>/.exec(text)?.[1];
  if (xmlCode) return new ApiError(status, xmlCode, xmlMessage ?? xmlCode);
  return new ApiError(status, `Http${status}`, text.trim().slice(0, 200) || `HTTP ${status}`);
}

/** Adds a hint to errors a user can fix by changing how they call `tl`. */
export function explainApiError(error: ApiError): string {
  if (error.status === 401 || error.status === 403) {
    return `${error.message}\nhint: pass --api-key or set TL_API_KEY (the local platform prints its key at start and keeps it in $TL_DATA_DIR/tenants.json)`;
  }
  return error.message;
}
