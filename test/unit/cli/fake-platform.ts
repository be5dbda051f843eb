import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the fake platform saw, in arrival order. */
export interface RecordedEvent {
  kind: 'upload-urls' | 'put-start' | 'put-done' | 'job' | 'predict' | 'models' | 'other';
  path: string;
  at: number;
  headers: IncomingMessage['headers'];
  body?: Buffer;
}

export interface FakePlatformOptions {
  /** When set, calls without this `x-api-key` get 403 INVALID_API_KEY, as both gateways answer (PUTs to upload URLs excepted). */
  apiKey?: string;
  /** Answers to `GET /models/{model}/job`, one per call; the last one repeats. `404` means no job. */
  jobs?: Array<Record<string, unknown> | 404>;
  /** Delay of the PUT of a given path, to make ordering bugs visible. */
  putDelayMs?: (path: string) => number;
  /** Status to answer PUTs of a given path with. @default 200 */
  putStatus?: (path: string) => number;
  /** Origin the upload URLs point at. @default this server */
  uploadOrigin?: string;
  /** Version each predict call answers with; the pinned `version` wins when sent. */
  version?: string;
}

/**
 * A small stand-in for the platform's HTTP API on 127.0.0.1: the routes the CLI calls,
 * answering like the real ones and recording every request.
 */
export class FakePlatform {
  readonly events: RecordedEvent[] = [];
  /** Bytes received by upload URL path. */
  readonly uploaded = new Map<string, Buffer>();
  maxConcurrentPuts = 0;
  private inFlightPuts = 0;
  private jobCalls = 0;
  private server: Server;
  url = '';

  constructor(private readonly options: FakePlatformOptions = {}) {
    this.server = createServer((req, res) => {
      void this.handle(req, res);
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  ofKind(kind: RecordedEvent['kind']): RecordedEvent[] {
    return this.events.filter((e) => e.kind === kind);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = decodeURIComponent(url.pathname);
    const chunks: Buffer[] = [];
    const isPut = req.method === 'PUT' && path.startsWith('/_upload/');
    if (isPut) {
      this.events.push({ kind: 'put-start', path, at: Date.now(), headers: req.headers });
      this.inFlightPuts += 1;
      this.maxConcurrentPuts = Math.max(this.maxConcurrentPuts, this.inFlightPuts);
    }
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };

    if (isPut) {
      const key = path.slice('/_upload/'.length);
      const delay = this.options.putDelayMs?.(key) ?? 0;
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      const status = this.options.putStatus?.(key) ?? 200;
      if (status === 200) this.uploaded.set(key, body);
      this.inFlightPuts -= 1;
      this.events.push({ kind: 'put-done', path: key, at: Date.now(), headers: req.headers, body });
      res.writeHead(status);
      res.end(status === 200 ? '' : JSON.stringify({ error: { code: 'Boom', message: 'disk on fire' } }));
      return;
    }

    if (this.options.apiKey !== undefined && req.headers['x-api-key'] !== this.options.apiKey) {
      this.events.push({ kind: 'other', path, at: Date.now(), headers: req.headers });
      return send(403, { error: { code: 'INVALID_API_KEY', message: 'missing or wrong API key' } });
    }

    let m: RegExpExecArray | null;
    if (req.method === 'POST' && (m = /^\/datasets\/([^/]+)\/uploads$/.exec(path))) {
      this.events.push({ kind: 'upload-urls', path, at: Date.now(), headers: req.headers, body });
      const { files } = JSON.parse(body.toString()) as { files: { path: string; contentType?: string }[] };
      const origin = this.options.uploadOrigin ?? this.url;
      return send(200, {
        dataset: m[1],
        uploads: files.map((f) => ({
          path: f.path,
          key: `datasets/${m![1]}/${f.path}`,
          method: 'PUT',
          url: `${origin}/_upload/${m![1]}/${f.path.split('/').map(encodeURIComponent).join('/')}?sig=abc`,
          headers: { 'content-type': f.contentType ?? 'application/octet-stream', 'x-upload-token': 'tok' },
        })),
        expiresIn: 900,
      });
    }
    if (req.method === 'GET' && (m = /^\/models\/([^/]+)\/job$/.exec(path))) {
      this.events.push({ kind: 'job', path, at: Date.now(), headers: req.headers });
      const jobs = this.options.jobs ?? [404];
      const answer = jobs[Math.min(this.jobCalls++, jobs.length - 1)];
      if (answer === 404) return send(404, { error: { code: 'NotFound', message: `no job for model ${m[1]}` } });
      return send(200, answer);
    }
    if (req.method === 'POST' && (m = /^\/models\/([^/]+)\/predict$/.exec(path))) {
      this.events.push({ kind: 'predict', path, at: Date.now(), headers: req.headers, body });
      const request = JSON.parse(body.toString()) as { instances: { image: string }[]; version?: string; topK?: number };
      return send(200, {
        model: m[1],
        version: request.version ?? this.options.version ?? 'v20250101000000-abcdef',
        // Each image's own text as its label, so a test can check the merge order.
        predictions: request.instances.map((i) => ({
          class: { label: Buffer.from(i.image, 'base64').toString(), score: 0.9, scores: [{ label: 'x', score: 0.9 }] },
        })),
      });
    }
    if (req.method === 'GET' && path === '/models') {
      this.events.push({ kind: 'models', path, at: Date.now(), headers: req.headers });
      return send(200, { models: [{ model: 'shapes', version: 'v20250101000000-abcdef' }] });
    }
    this.events.push({ kind: 'other', path, at: Date.now(), headers: req.headers });
    return send(404, { error: { code: 'NotFound', message: `no route ${req.method} ${path}` } });
  }
}

/** A stream stand-in that keeps what was written. */
export function captureOutput(isTTY = false): { write(chunk: string): boolean; isTTY: boolean; text: () => string } {
  let text = '';
  return {
    isTTY,
    write(chunk: string) {
      text += chunk;
      return true;
    },
    text: () => text,
  };
}

/** A job status as the platform writes it, with the fields a test cares about. */
export function jobStatus(overrides: Record<string, unknown>): Record<string, unknown> {
  return {
    jobId: 'job-1',
    model: 'shapes',
    dataset: 'shapes',
    datasetHash: 'h1',
    state: 'running',
    progress: 0,
    metrics: {},
    createdAt: '2025-01-01T00:00:00.000Z',
    updatedAt: '2025-01-01T00:00:00.000Z',
    ...overrides,
  };
}
