import { connect } from 'node:net';
import type { Server } from 'node:http';
import type { APIGatewayProxyResult } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalGateway, listen, type LocalGatewayTenant } from '../../../shared/local/server.js';
import type { LogAttributes } from '../../../shared/observability.js';

/** Sends raw bytes (what no HTTP client library would send) and returns the whole answer. */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (answer += d));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error(`no answer to ${JSON.stringify(request.slice(0, 40))}`)));
    socket.write(request);
  });
}

const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
const jsonOf = (answer: string) => JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error?: { code: string; message: string } };

describe('local gateway under hostile request targets', () => {
  let server: Server;
  let port: number;
  const logged: Array<{ message: string; attributes?: LogAttributes }> = [];
  const handled: string[] = [];
  const tenant: LocalGatewayTenant = {
    id: 't',
    predict: async (event): Promise<APIGatewayProxyResult> => {
      handled.push(event.path);
      if (event.pathParameters?.model === 'explode') throw new TypeError('a bug in a handler');
      return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ path: event.path, params: event.pathParameters }) };
    },
    uploads: async () => ({ statusCode: 200, body: '{}' }),
    verifyUpload: () => false,
    storeUpload: async () => undefined,
  };

  beforeAll(async () => {
    server = createLocalGateway({
      tenantByApiKey: (k) => (k === 'good-key' ? tenant : undefined),
      tenantById: () => undefined,
      log: (message, attributes) => logged.push({ message, attributes }),
    });
    const url = await listen(server, 0);
    port = Number(new URL(url).port);
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    server.closeAllConnections();
  });

  const stillAnswers = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/health`);
    expect(res.status).toBe(200);
  };

  it.each(['//[', 'http://%', 'http://x:99999/', 'http://[x]/', '//x/models', '/models/%2e%2e/predict', '/models/./x', '*', '/models//predict'])(
    'answers %s with a JSON 400 and keeps serving',
    async (target) => {
      // Prepare: a target Node's HTTP parser accepts but no route may resolve.
      const request = `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: good-key\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`;

      // Act
      const answer = await raw(port, request);

      // Assess: a 400 in the error shape, no handler reached, and the server still up.
      expect(statusOf(answer), answer).toBe(400);
      expect(jsonOf(answer).error?.code).toMatch(/^(INVALID_PATH|BAD_REQUEST)$/);
      expect(handled).not.toContain('/models');
      await stillAnswers();
    },
  );

  it('answers a request Node cannot parse with a JSON 400, and one with huge headers with 431', async () => {
    const garbage = await raw(port, 'NOT HTTP AT ALL\r\n\r\n');
    expect(statusOf(garbage)).toBe(400);
    expect(jsonOf(garbage).error?.code).toBe('BAD_REQUEST');
    const huge = await raw(port, `GET /health HTTP/1.1\r\nHost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(statusOf(huge)).toBe(431);
    expect(jsonOf(huge).error?.code).toBe('HEADERS_TOO_LARGE');
    await stillAnswers();
  });

  it('turns an exception in a handler into a JSON 500 and logs it, without ending the process', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/models/explode/predict`, { method: 'POST', headers: { 'x-api-key': 'good-key' }, body: '{}' });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: { code: 'INTERNAL', message: 'internal error' } });
    // Logged twice, structured: the error with its stack, then the request line with the keys Lambda logs.
    const failure = logged.find((l) => l.message === 'request failed');
    expect((failure?.attributes?.error as Error | undefined)?.message).toBe('a bug in a handler');
    expect(logged.find((l) => l.message === 'request' && l.attributes?.model === 'explode')?.attributes).toMatchObject({
      method: 'POST',
      path: '/models/explode/predict',
      route: 'POST /models/{model}/predict',
      tenant: 't',
      status: 500,
      code: 'INTERNAL',
      requestId: expect.any(String),
      latencyMs: expect.any(Number),
    });
    await stillAnswers();
  });

  it('answers an oversized body with a 413 the client can read, not a reset connection', async () => {
    // 20 MB: more than the 6 MB limit, sent whole by the client before it reads the answer.
    const res = await fetch(`http://127.0.0.1:${port}/models/x/predict`, {
      method: 'POST',
      headers: { 'x-api-key': 'good-key', 'content-type': 'application/json' },
      body: 'x'.repeat(20 * 1024 * 1024),
    });
    expect(res.status).toBe(413);
    expect((await res.json()) as unknown).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
    await stillAnswers();
  });

  it('still routes ordinary targets, with their query', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/models/my%20model/predict?version=latest`, {
      method: 'POST',
      headers: { 'x-api-key': 'good-key' },
      body: '{}',
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ path: '/models/my%20model/predict', params: { model: 'my model' } });
  });
});

describe('local gateway and slow clients', () => {
  it('answers a client that never finishes its headers with a JSON 408, and keeps serving', async () => {
    // Prepare: timeouts short enough for a test
    const server = createLocalGateway({ tenantByApiKey: () => undefined, tenantById: () => undefined, timeouts: { headersMs: 300, requestMs: 600 } });
    const port = Number(new URL(await listen(server, 0)).port);
    try {
      // Act: headers without the blank line that ends them, then silence
      const answer = await raw(port, 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nx-slow: 1\r\n');

      // Assess
      expect(statusOf(answer)).toBe(408);
      expect(jsonOf(answer)).toMatchObject({ error: { code: 'REQUEST_TIMEOUT' } });
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
    }
  });
});
