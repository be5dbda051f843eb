import type { APIGatewayProxyEvent } from 'aws-lambda';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createObservability, observeApi } from '../../../shared/observability.js';

/** The EMF and log lines Powertools writes to stdout, parsed. */
function captureStdout(): { lines: () => Record<string, unknown>[] } {
  const written: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void written.push(args.map(String).join(' ')));
  vi.spyOn(console, 'info').mockImplementation((...args: unknown[]) => void written.push(args.map(String).join(' ')));
  vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void written.push(args.map(String).join(' ')));
  return {
    lines: () =>
      written
        .join('\n')
        .split('\n')
        .filter((l) => l.trim().startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const event = (resource: string, model = 'pets') =>
  ({
    httpMethod: 'POST',
    resource,
    path: resource.replace('{model}', model),
    pathParameters: { model },
    requestContext: { requestId: 'req-1' },
  }) as unknown as APIGatewayProxyEvent;

describe('observeApi', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
  });

  it('logs a JSON line with tenant, model, version and request id, and emits prediction metrics', async () => {
    vi.stubEnv('POWERTOOLS_DEV', '');
    const out = captureStdout();
    const handler = observeApi(
      async () => ({ statusCode: 200, body: JSON.stringify({ model: 'pets', version: 'v1', predictions: [{}, {}, {}] }) }),
      () => createObservability('predict', { TL_TENANT: 'acme' }),
    );

    const result = await handler(event('/models/{model}/predict'));

    expect(result.statusCode).toBe(200);
    const lines = out.lines();
    const log = lines.find((l) => l.message === 'request');
    expect(log).toMatchObject({ tenant: 'acme', model: 'pets', version: 'v1', requestId: 'req-1', route: 'POST /models/{model}/predict', status: 200 });
    const emf = lines.filter((l) => l._aws);
    const names = emf.flatMap((l) =>
      ((l._aws as { CloudWatchMetrics: { Metrics: { Name: string }[] }[] }).CloudWatchMetrics[0].Metrics ?? []).map((m) => m.Name),
    );
    expect(names).toEqual(expect.arrayContaining(['Requests', 'Latency', 'Predictions', 'InstancesPerCall']));
    expect(emf.find((l) => 'Predictions' in l)).toMatchObject({ Predictions: 3, model: 'pets', tenant: 'acme' });
  });

  it('counts errors by their platform code', async () => {
    const out = captureStdout();
    const handler = observeApi(
      async () => ({ statusCode: 404, body: JSON.stringify({ error: { code: 'MODEL_NOT_FOUND', message: 'no model' } }) }),
      () => createObservability('predict', { TL_TENANT: 'acme' }),
    );

    await handler(event('/models/{model}/predict', 'nope'));

    expect(out.lines().find((l) => 'Errors' in l)).toMatchObject({ Errors: 1, code: 'MODEL_NOT_FOUND', route: 'POST /models/{model}/predict' });
  });
});
