import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { passJobLine, startPlatform } from '../../../shared/local/platform.js';
import type { LogAttributes } from '../../../shared/observability.js';

const png = (colour: string) =>
  sharp({ create: { width: 16, height: 16, channels: 3, background: colour } })
    .png()
    .toBuffer();

type Logged = { message: string; attributes?: LogAttributes };

describe('the embedded platform logs the structure the Lambda functions log', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'tl-logs-'));
  });
  afterEach(async () => rm(dataDir, { recursive: true, force: true }));

  it('writes one request line per API call with tenant, route, status, latency and request id', async () => {
    const logged: Logged[] = [];
    const platform = await startPlatform({ dataDir, port: 0, dashboard: false, log: (message, attributes) => logged.push({ message, attributes }) });
    try {
      const key = platform.defaultTenant.tenant.apiKey;
      expect((await fetch(`${platform.url}/models`, { headers: { 'x-api-key': key } })).status).toBe(200);
      const missing = await fetch(`${platform.url}/models/nope/predict`, {
        method: 'POST',
        headers: { 'x-api-key': key },
        body: '{"instances":[{"features":[1]}]}',
      });
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('MODEL_NOT_FOUND');
      expect((await fetch(`${platform.url}/models`, { headers: { 'x-api-key': 'wrong' } })).status).toBe(403);
    } finally {
      await platform.stop();
    }
    const requests = logged.filter((l) => l.message === 'request').map((l) => l.attributes);
    expect(requests).toEqual([
      expect.objectContaining({
        method: 'GET',
        path: '/models',
        route: 'GET /models',
        status: 200,
        tenant: platform.defaultTenant.tenant.id,
        requestId: expect.any(String),
        latencyMs: expect.any(Number),
      }),
      expect.objectContaining({ route: 'POST /models/{model}/predict', model: 'nope', status: 404, code: 'MODEL_NOT_FOUND' }),
      // A wrong key names no tenant: the line says so by leaving it out.
      expect.objectContaining({ path: '/models', status: 403, code: 'INVALID_API_KEY' }),
    ]);
    expect(requests[2]).not.toHaveProperty('tenant');
  });

  it('starts the job with its tenant in TL_TENANT and its metrics off (no CloudWatch here)', async () => {
    const jobLines: string[] = [];
    const platform = await startPlatform({
      dataDir,
      port: 0,
      dashboard: false,
      log: () => {},
      runner: {
        command: { file: process.execPath, args: ['-e', 'console.log(JSON.stringify([process.env.TL_TENANT, process.env.POWERTOOLS_METRICS_DISABLED]))'] },
        onOutput: (_id, line) => jobLines.push(line),
      },
    });
    try {
      const store = platform.defaultTenant.store;
      for (const [label, colour] of [
        ['red', '#f00'],
        ['blue', '#00f'],
      ]) {
        for (let i = 0; i < 3; i++) await store.put(`datasets/colours/${label}/${i}.png`, await png(colour));
      }
      await store.put('datasets/colours/train.json', JSON.stringify({ base: 'none' }));
      const deadline = Date.now() + 20_000;
      while (!jobLines.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    } finally {
      await platform.stop();
    }
    expect(jobLines.map((l) => JSON.parse(l) as unknown)).toEqual([[platform.defaultTenant.tenant.id, 'true']]);
  });

  it("passes the job's JSON lines through as they are and wraps anything else in a line of its own", () => {
    const written: string[] = [];
    const logged: Logged[] = [];
    const log = (message: string, attributes?: LogAttributes) => logged.push({ message, attributes });
    passJobLine(log, 'j1', '{"level":"INFO","message":"epoch 1/2","jobId":"j1"}', (t) => written.push(t));
    passJobLine(log, 'j1', 'Error: boom', (t) => written.push(t));
    passJobLine(log, 'j1', '   ', (t) => written.push(t));
    expect(written).toEqual(['{"level":"INFO","message":"epoch 1/2","jobId":"j1"}\n']);
    expect(logged).toEqual([{ message: 'job output', attributes: { jobId: 'j1', line: 'Error: boom' } }]);
  });
});
