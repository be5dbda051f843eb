import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { MAX_REQUEST_BYTES, storageErrorStatus } from '../http/api.js';
import { DASHBOARD_OTHER_HEADERS, dashboardCsp } from '../http/dashboard-headers.js';
import { describeAnswer, type LogFn } from '../observability.js';

export type ApiHandler = (event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult>;

/** One API route, in API Gateway's resource syntax. */
export interface RouteSpec {
  method: string;
  resource: string;
  handler: 'predict' | 'uploads';
}

/** The routes of the inference API, as the CDK stack declares them. */
export const API_ROUTES: RouteSpec[] = [
  { method: 'GET', resource: '/models', handler: 'predict' },
  { method: 'GET', resource: '/models/{model}', handler: 'predict' },
  { method: 'GET', resource: '/models/{model}/job', handler: 'predict' },
  { method: 'POST', resource: '/models/{model}/predict', handler: 'predict' },
  { method: 'POST', resource: '/models/{model}/rollback', handler: 'predict' },
  { method: 'POST', resource: '/models/{model}/promote', handler: 'predict' },
  { method: 'GET', resource: '/models/{model}/versions', handler: 'predict' },
  { method: 'GET', resource: '/models/{model}/versions/{version}/report', handler: 'predict' },
  { method: 'GET', resource: '/models/{model}/versions/{version}/dataset', handler: 'predict' },
  { method: 'GET', resource: '/models/{model}/export', handler: 'predict' },
  { method: 'GET', resource: '/models/{model}/card', handler: 'predict' },
  { method: 'POST', resource: '/datasets/{dataset}/uploads', handler: 'uploads' },
];

/** Largest object accepted by a signed local upload. */
export const MAX_UPLOAD_BYTES = 100 * 1024 * 1024;

export interface LocalGatewayTenant {
  id: string;
  predict: ApiHandler;
  uploads: ApiHandler;
  /** Whether a signed upload URL's parameters are valid and unexpired (checked before any byte of the body is read). */
  verifyUpload(key: string, expires: string, sig: string): boolean;
  /**
   * Streams a verified upload into the bucket (never whole in memory) and stores
   * it only once complete. @throws PayloadTooLargeError above `maxBytes`
   */
  storeUpload(key: string, body: Readable, maxBytes: number): Promise<void>;
}

/** A file of the dashboard, served at `/` and `/assets/…`. */
export interface StaticAsset {
  body: Buffer;
  contentType: string;
}

/** Headers of every dashboard file: the policy and headers of shared/http/dashboard-headers.ts, API calls to this origin. */
export const DASHBOARD_HEADERS: Record<string, string> = {
  'content-security-policy': dashboardCsp(),
  ...DASHBOARD_OTHER_HEADERS,
};

/** What the request log line says, filled in as the request is handled. */
interface RequestInfo {
  path: string;
  tenant?: string;
  route?: string;
  requestId?: string;
  model?: string;
  code?: string;
  version?: string;
  instances?: number;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

export interface LocalGatewayOptions {
  /** The dashboard's files by path (`index.html`, `assets/app.js`), built on first use. Without it `/` is 404. */
  dashboard?: () => Promise<Map<string, StaticAsset>>;
  /** Finds the tenant that owns an API key. */
  tenantByApiKey(apiKey: string): LocalGatewayTenant | undefined;
  tenantById(id: string): LocalGatewayTenant | undefined;
  /** One `request` line per request, with the keys the Lambda functions log (route, status, latency, tenant, request id, model, version, error code). */
  log?: LogFn;
  /** Uploads streamed at once; more wait their turn (each holds one small buffer, so memory stays flat). @default 4 */
  maxConcurrentUploads?: number;
  /**
   * Predict calls in flight at once, over all tenants; beyond it the answer is 429
   * with `Retry-After`, as a usage plan's throttle answers on AWS, rather than a
   * queue that grows until every caller times out. @default DEFAULT_MAX_INFLIGHT_PREDICTS
   */
  maxInFlightPredicts?: number;
  /** How long a client may take to send its headers, and its whole request (408 beyond). @default HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS */
  timeouts?: { headersMs: number; requestMs: number };
}

/** Predictions run on this process's cores: 16 in flight keep 2 cores busy with room to spare, and bound the memory of decoded images. */
export const DEFAULT_MAX_INFLIGHT_PREDICTS = 16;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra response headers, such as `Retry-After`. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

const errorBody = (e: HttpError) => ({ error: { code: e.code, message: e.message } });

/**
 * What the server reads of a body it refuses before answering. Without reading it,
 * closing the connection while the client is still sending resets it (the client
 * sees EPIPE/ECONNRESET, not the 413); past this cap the connection is cut anyway.
 */
const DRAIN_LIMIT_BYTES = 64 * 1024 * 1024;

/** Reads and discards what is left of a request body, up to DRAIN_LIMIT_BYTES; resolves whether it all arrived. */
async function drain(req: IncomingMessage, alreadyRead = 0): Promise<boolean> {
  if (req.readableEnded || req.destroyed) return req.readableEnded;
  let seen = alreadyRead;
  return new Promise((resolve) => {
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > DRAIN_LIMIT_BYTES) done(false);
    };
    const done = (complete: boolean) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      resolve(complete);
    };
    const onEnd = () => done(true);
    const onError = () => done(false);
    const onClose = () => done(req.readableEnded);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    req.once('close', onClose);
    req.resume();
  });
}

/** Thrown while streaming a body that turns out larger than its limit. */
export class PayloadTooLargeError extends HttpError {
  constructor(limit: number, declared?: number) {
    super(
      413,
      'PAYLOAD_TOO_LARGE',
      declared === undefined ? `request body exceeds the limit of ${limit} bytes` : `request body of ${declared} bytes exceeds the limit of ${limit} bytes`,
    );
  }
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new PayloadTooLargeError(limit, declared);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new PayloadTooLargeError(limit);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function decodeSegment(segment: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'INVALID_PATH', `path segment ${JSON.stringify(segment)} is not valid percent-encoding`);
  }
  // An encoded "..", "." or "/" would let a parameter climb out of its place once
  // a handler joins it into a key: refuse it here, as API Gateway refuses such paths.
  if (decoded === '.' || decoded === '..' || decoded.includes('/') || decoded.includes('\\')) {
    throw new HttpError(400, 'INVALID_PATH', `path segment ${JSON.stringify(segment)} decodes to ${JSON.stringify(decoded)}, which is not allowed in a path`);
  }
  return decoded;
}

/** The request target split into a path and its query, checked strictly. */
export interface RequestTarget {
  pathname: string;
  searchParams: URLSearchParams;
}

/**
 * Parses a request target without the WHATWG URL parser: `new URL()` throws on
 * targets Node's HTTP parser lets through (`//[`, `http://%`) and resolves others
 * (`//x/models` → host x, path /models) into a request the client did not send.
 * Only origin-form targets (`/path?query`) with no empty, "." or ".." segment pass.
 * @throws HttpError 400 INVALID_PATH
 */
export function parseTarget(raw: string | undefined): RequestTarget {
  const target = raw ?? '';
  const bad = (why: string) => new HttpError(400, 'INVALID_PATH', `request target ${JSON.stringify(target.slice(0, 200))} ${why}`);
  if (!target.startsWith('/')) throw bad('must be a path starting with "/"');
  const q = target.indexOf('?');
  const pathname = q >= 0 ? target.slice(0, q) : target;
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  if (/[\u0000-\u0020\u007f#]/.test(pathname)) throw bad('contains a space, a control character or "#"');
  const segments = pathname.split('/').slice(1);
  const inner = segments.at(-1) === '' ? segments.slice(0, -1) : segments;
  if (pathname !== '/' && inner.some((seg) => seg === '' || seg === '.' || seg === '..')) throw bad('has an empty, "." or ".." segment');
  return { pathname, searchParams: new URLSearchParams(q >= 0 ? target.slice(q + 1) : '') };
}

/**
 * Matches a path against the route templates; returns the route and its parameters.
 * @throws HttpError 400 when a parameter is not valid percent-encoding or decodes to ".", ".." or a "/"
 */
export function matchRoute(method: string, pathname: string): { route: RouteSpec; params: Record<string, string> } | { methodMismatch: true } | undefined {
  const parts = pathname.split('/').filter(Boolean);
  let methodMismatch = false;
  for (const route of API_ROUTES) {
    const tpl = route.resource.split('/').filter(Boolean);
    if (tpl.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < tpl.length && ok; i++) {
      const m = /^\{(\w+)\}$/.exec(tpl[i]);
      if (m) params[m[1]] = decodeSegment(parts[i]);
      else ok = tpl[i] === parts[i];
    }
    if (!ok) continue;
    if (route.method !== method) {
      methodMismatch = true;
      continue;
    }
    return { route, params };
  }
  return methodMismatch ? { methodMismatch: true } : undefined;
}

/** Builds the API Gateway REST proxy event the Lambda would receive. */
export function toProxyEvent(
  req: IncomingMessage,
  url: RequestTarget,
  route: RouteSpec,
  params: Record<string, string>,
  body: Buffer,
  tenantId: string,
): APIGatewayProxyEvent {
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    headers[k] = Array.isArray(v) ? v.join(',') : v;
    multiValueHeaders[k] = Array.isArray(v) ? v : [v];
  }
  const query: Record<string, string> = {};
  const multiQuery: Record<string, string[]> = {};
  for (const [k, v] of url.searchParams) {
    query[k] = v;
    (multiQuery[k] ??= []).push(v);
  }
  const now = Date.now();
  return {
    resource: route.resource,
    path: url.pathname,
    httpMethod: route.method,
    headers,
    multiValueHeaders,
    queryStringParameters: Object.keys(query).length ? query : null,
    multiValueQueryStringParameters: Object.keys(multiQuery).length ? multiQuery : null,
    pathParameters: Object.keys(params).length ? params : null,
    stageVariables: null,
    body: body.length ? body.toString('utf8') : null,
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      authorizer: null,
      protocol: `HTTP/${req.httpVersion}`,
      httpMethod: route.method,
      identity: {
        accessKey: null,
        accountId: null,
        apiKey: headers['x-api-key'] ?? null,
        apiKeyId: tenantId,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        user: null,
        userAgent: headers['user-agent'] ?? null,
        userArn: null,
      },
      path: url.pathname,
      stage: 'local',
      requestId: randomUUID(),
      requestTimeEpoch: now,
      resourceId: 'local',
      resourcePath: route.resource,
    },
  };
}

/** A counting semaphore: at most `limit` holders at once, the rest queue in order. */
class Semaphore {
  private active = 0;
  private readonly queue: Array<() => void> = [];
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.queue.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

/** A raw HTTP/1.1 answer for connections Node's parser rejected (no request or response object exists then). */
function rawErrorResponse(status: number, reason: string, e: HttpError): string {
  const body = JSON.stringify(errorBody(e));
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** How long a client may take to send its headers, and its whole request. */
export const HEADERS_TIMEOUT_MS = 20_000;
export const REQUEST_TIMEOUT_MS = 300_000;

/**
 * The embedded default's API Gateway: checks `x-api-key` like a usage plan,
 * limits body size, turns requests into REST proxy events for the very handlers
 * that run on Lambda, and accepts signed uploads (the local presigned URLs).
 * No request, however malformed, can end the process: every failure inside a
 * request becomes a JSON error answer (500 only for faults of the server itself).
 */
export function createLocalGateway(options: LocalGatewayOptions): Server {
  const log = options.log ?? (() => {});
  const uploads = new Semaphore(options.maxConcurrentUploads ?? 4);
  const maxPredicts = options.maxInFlightPredicts ?? DEFAULT_MAX_INFLIGHT_PREDICTS;
  let predictsInFlight = 0;

  const dashboardAsset = async (method: string, pathname: string): Promise<StaticAsset | undefined> => {
    if (!options.dashboard || (method !== 'GET' && method !== 'HEAD')) return undefined;
    const rel = pathname === '/' ? 'index.html' : pathname.slice(1);
    if (rel !== 'index.html' && !rel.startsWith('assets/')) return undefined;
    return (await options.dashboard()).get(rel);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, method: string, info: RequestInfo): Promise<number> => {
    const url = parseTarget(req.url);
    if (url.pathname === '/health') {
      send(res, 200, { ok: true });
      return 200;
    }
    const asset = await dashboardAsset(method, url.pathname);
    if (asset) {
      res.writeHead(200, { 'content-type': asset.contentType, 'content-length': asset.body.length, ...DASHBOARD_HEADERS });
      res.end(method === 'HEAD' ? undefined : asset.body);
      return 200;
    }
    const upload = /^\/_objects\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (upload) {
      if (method !== 'PUT') throw new HttpError(405, 'METHOD_NOT_ALLOWED', 'uploads use PUT');
      const tenant = options.tenantById(decodeSegment(upload[1]));
      const key = upload[2].split('/').map(decodeSegment).join('/');
      // The signature is in the URL: check it before reading a byte of the body.
      if (!tenant?.verifyUpload(key, url.searchParams.get('expires') ?? '', url.searchParams.get('sig') ?? ''))
        throw new HttpError(403, 'INVALID_SIGNATURE', 'upload URL is invalid or expired');
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > MAX_UPLOAD_BYTES) throw new PayloadTooLargeError(MAX_UPLOAD_BYTES, declared);
      await uploads.run(() => tenant.storeUpload(key, req, MAX_UPLOAD_BYTES));
      send(res, 200, { key });
      return 200;
    }
    const matched = matchRoute(method, url.pathname);
    if (!matched) throw new HttpError(404, 'NOT_FOUND', `no route ${method} ${url.pathname}`);
    if ('methodMismatch' in matched) throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${url.pathname}`);
    const apiKey = req.headers['x-api-key'];
    // 403 INVALID_API_KEY, as API Gateway answers a missing key (its INVALID_API_KEY gateway response covers
    // missing and wrong keys alike), so a client sees one answer on both; only the message differs.
    if (typeof apiKey !== 'string' || !apiKey) throw new HttpError(403, 'INVALID_API_KEY', 'send your API key in the x-api-key header');
    const tenant = options.tenantByApiKey(apiKey);
    if (!tenant) throw new HttpError(403, 'INVALID_API_KEY', 'the API key is not valid');
    info.tenant = tenant.id;
    const route = `${method} ${matched.route.resource}`;
    info.route = route;
    info.model = matched.params.model;
    const isPredict = matched.route.resource === '/models/{model}/predict';
    if (isPredict && predictsInFlight >= maxPredicts) {
      throw new HttpError(429, 'TOO_MANY_REQUESTS', `${maxPredicts} predictions are already running; retry in a second`, { 'retry-after': '1' });
    }
    if (isPredict) predictsInFlight++;
    let result: Awaited<ReturnType<ApiHandler>>;
    try {
      const body = await readBody(req, MAX_REQUEST_BYTES);
      const event = toProxyEvent(req, url, matched.route, matched.params, body, tenant.id);
      info.requestId = event.requestContext.requestId;
      result = await tenant[matched.route.handler](event);
    } finally {
      if (isPredict) predictsInFlight--;
    }
    Object.assign(info, describeAnswer(route, result));
    // Binary bodies (the ONNX export) come base64-encoded, as API Gateway expects them.
    const payload = result.isBase64Encoded ? Buffer.from(result.body, 'base64') : result.body;
    res.writeHead(result.statusCode, { 'content-length': Buffer.byteLength(payload), ...(result.headers as Record<string, string>) });
    res.end(payload);
    return result.statusCode;
  };

  const fail = async (req: IncomingMessage, res: ServerResponse, method: string, info: RequestInfo, err: unknown): Promise<number> => {
    const storage = storageErrorStatus(err);
    const e =
      err instanceof HttpError
        ? err
        : storage
          ? new HttpError(storage.status, storage.code, storage.message)
          : new HttpError(500, 'INTERNAL', 'internal error');
    info.code = e.code;
    if (!(err instanceof HttpError)) log('request failed', { method, path: info.path, error: asError(err) });
    if (res.headersSent) {
      res.destroy();
      return e.status;
    }
    // Read what the client is still sending (up to a cap) so it can read this answer.
    const complete = await drain(req);
    if (res.headersSent || res.destroyed) return e.status;
    send(res, e.status, errorBody(e), complete ? e.headers : { ...e.headers, connection: 'close' });
    return e.status;
  };

  const timeouts = options.timeouts ?? { headersMs: HEADERS_TIMEOUT_MS, requestMs: REQUEST_TIMEOUT_MS };
  // Node checks the timeouts every connectionsCheckingInterval (30 s by default): often enough for short ones too.
  const server = createServer({ connectionsCheckingInterval: Math.min(30_000, Math.max(50, timeouts.headersMs / 4)) }, (req, res) => {
    const started = performance.now();
    const method = (req.method ?? 'GET').toUpperCase();
    // The path without its query: signed upload URLs carry their signature there.
    const info: RequestInfo = { path: String(req.url).split('?')[0].slice(0, 200) };
    handle(req, res, method, info)
      .catch((err: unknown) => fail(req, res, method, info, err))
      .then((status) => {
        const { path: where, ...keys } = info;
        log('request', { method, path: where, status, latencyMs: Math.round(performance.now() - started), ...keys });
      })
      // Last resort: nothing a request does may end the process.
      .catch((err: unknown) => {
        log('could not answer', { method, path: info.path, error: asError(err) });
        if (!res.headersSent && !res.destroyed) send(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
        else res.destroy();
      });
  });
  server.headersTimeout = timeouts.headersMs;
  server.requestTimeout = timeouts.requestMs;
  // Requests Node's parser refuses never reach the handler: answer them in the same JSON shape.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const e = tooLarge
      ? new HttpError(431, 'HEADERS_TOO_LARGE', 'request headers are too large')
      : timeout
        ? new HttpError(408, 'REQUEST_TIMEOUT', 'the request took too long to arrive')
        : new HttpError(400, 'BAD_REQUEST', `malformed HTTP request (${err.code ?? 'parse error'})`);
    socket.end(rawErrorResponse(e.status, tooLarge ? 'Request Header Fields Too Large' : timeout ? 'Request Timeout' : 'Bad Request', e));
  });
  return server;
}

export async function listen(server: Server, port: number, host = '127.0.0.1'): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return `http://${host}:${addr.port}`;
}
