import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { MAX_REQUEST_BYTES } from '../http/api.js';

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
  { method: 'POST', resource: '/datasets/{dataset}/uploads', handler: 'uploads' },
];

/** Largest object accepted by a signed local upload. */
export const MAX_UPLOAD_BYTES = 100 * 1024 * 1024;

export interface LocalGatewayTenant {
  id: string;
  predict: ApiHandler;
  uploads: ApiHandler;
  /** Stores a signed upload; returns false when the signature is invalid or expired. */
  acceptUpload(key: string, expires: number, sig: string, body: Buffer): Promise<boolean>;
}

export interface LocalGatewayOptions {
  /** Finds the tenant that owns an API key. */
  tenantByApiKey(apiKey: string): LocalGatewayTenant | undefined;
  tenantById(id: string): LocalGatewayTenant | undefined;
  log?: (line: string) => void;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

const sendError = (res: ServerResponse, e: HttpError) => send(res, e.status, { error: { code: e.code, message: e.message } });

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new HttpError(413, 'PAYLOAD_TOO_LARGE', `request body of ${declared} bytes exceeds the limit of ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, 'PAYLOAD_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'INVALID_PATH', `path segment ${JSON.stringify(segment)} is not valid percent-encoding`);
  }
}

/**
 * Matches a path against the route templates; returns the route and its parameters.
 * @throws HttpError 400 when a parameter is not valid percent-encoding
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
export function toProxyEvent(req: IncomingMessage, url: URL, route: RouteSpec, params: Record<string, string>, body: Buffer, tenantId: string): APIGatewayProxyEvent {
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
        accessKey: null, accountId: null, apiKey: headers['x-api-key'] ?? null, apiKeyId: tenantId, caller: null, clientCert: null,
        cognitoAuthenticationProvider: null, cognitoAuthenticationType: null, cognitoIdentityId: null, cognitoIdentityPoolId: null,
        principalOrgId: null, sourceIp: req.socket.remoteAddress ?? '127.0.0.1', user: null, userAgent: headers['user-agent'] ?? null, userArn: null,
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

/**
 * The embedded default's API Gateway: checks `x-api-key` like a usage plan,
 * limits body size, turns requests into REST proxy events for the very handlers
 * that run on Lambda, and accepts signed uploads (the local presigned URLs).
 */
export function createLocalGateway(options: LocalGatewayOptions): Server {
  const log = options.log ?? (() => {});
  return createServer(async (req, res) => {
    const started = Date.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = (req.method ?? 'GET').toUpperCase();
    try {
      if (url.pathname === '/health') return send(res, 200, { ok: true });
      const upload = /^\/_objects\/([^/]+)\/(.+)$/.exec(url.pathname);
      if (upload) {
        if (method !== 'PUT') throw new HttpError(405, 'METHOD_NOT_ALLOWED', 'uploads use PUT');
        const tenant = options.tenantById(decodeSegment(upload[1]));
        const key = upload[2].split('/').map(decodeSegment).join('/');
        const body = await readBody(req, MAX_UPLOAD_BYTES);
        const ok = tenant && (await tenant.acceptUpload(key, Number(url.searchParams.get('expires')), url.searchParams.get('sig') ?? '', body));
        if (!ok) throw new HttpError(403, 'INVALID_SIGNATURE', 'upload URL is invalid or expired');
        return send(res, 200, { key });
      }
      const matched = matchRoute(method, url.pathname);
      if (!matched) throw new HttpError(404, 'NOT_FOUND', `no route ${method} ${url.pathname}`);
      if ('methodMismatch' in matched) throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${url.pathname}`);
      const apiKey = req.headers['x-api-key'];
      if (typeof apiKey !== 'string' || !apiKey) throw new HttpError(401, 'MISSING_API_KEY', 'send your API key in the x-api-key header');
      const tenant = options.tenantByApiKey(apiKey);
      if (!tenant) throw new HttpError(403, 'INVALID_API_KEY', 'the API key is not valid');
      const body = await readBody(req, MAX_REQUEST_BYTES);
      const event = toProxyEvent(req, url, matched.route, matched.params, body, tenant.id);
      const result = await tenant[matched.route.handler](event);
      res.writeHead(result.statusCode, { 'content-length': Buffer.byteLength(result.body), ...(result.headers as Record<string, string>) });
      res.end(result.body);
      log(`${method} ${url.pathname} ${result.statusCode} ${Date.now() - started}ms`);
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, 'INTERNAL', 'internal error');
      if (!(err instanceof HttpError)) log(`${method} ${url.pathname} failed: ${(err as Error).stack ?? err}`);
      if (e.status === 413) res.setHeader('connection', 'close');
      sendError(res, e);
      log(`${method} ${url.pathname} ${e.status} ${Date.now() - started}ms`);
    }
  });
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
