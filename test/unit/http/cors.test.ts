import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { withCors } from '../../../shared/http/cors.js';
import { CorsEnvSchema, loadEnv } from '../../../shared/schemas/env.js';

const DASHBOARD = 'https://d111111abcdef8.cloudfront.net';
const event = { httpMethod: 'GET', resource: '/models', path: '/models', headers: { origin: DASHBOARD } } as unknown as APIGatewayProxyEvent;
const answer = (statusCode: number, headers?: Record<string, string>): APIGatewayProxyResult => ({
  statusCode,
  headers,
  body: JSON.stringify(statusCode === 200 ? { models: [] } : { error: { code: 'INVALID_REQUEST', message: 'no' } }),
});

describe('withCors', () => {
  it('lets the dashboard origin, and only it, read successes and errors alike', async () => {
    // Prepare
    const handler = withCors(async () => answer(200, { 'content-type': 'application/json' }), DASHBOARD);
    const failing = withCors(async () => answer(400), DASHBOARD);

    // Act
    const ok = await handler(event);
    const bad = await failing(event);

    // Assess
    expect(ok.headers).toMatchObject({ 'content-type': 'application/json', 'access-control-allow-origin': DASHBOARD, vary: 'Origin' });
    expect(ok.body).toBe(JSON.stringify({ models: [] }));
    expect(bad.statusCode).toBe(400);
    expect(bad.headers?.['access-control-allow-origin']).toBe(DASHBOARD);
  });

  it('leaves answers alone without an origin (the embedded default serves page and API from one origin)', async () => {
    const result = await withCors(async () => answer(200, { 'content-type': 'application/json' }), undefined)(event);

    expect(result.headers).toEqual({ 'content-type': 'application/json' });
  });

  it('reads the origin once, on the first request', async () => {
    let reads = 0;
    const handler = withCors(
      async () => answer(200),
      () => {
        reads++;
        return DASHBOARD;
      },
    );

    await handler(event);
    await handler(event);

    expect(reads).toBe(1);
  });
});

describe('CorsEnvSchema', () => {
  it('accepts an https origin and an absent one', () => {
    expect(loadEnv(CorsEnvSchema, { TL_ALLOWED_ORIGIN: DASHBOARD }).TL_ALLOWED_ORIGIN).toBe(DASHBOARD);
    expect(loadEnv(CorsEnvSchema, {}).TL_ALLOWED_ORIGIN).toBeUndefined();
  });

  it.each(['*', `${DASHBOARD}/`, `${DASHBOARD}/index.html`, 'd111111abcdef8.cloudfront.net'])('rejects %s, which is not one origin', (value) => {
    expect(() => loadEnv(CorsEnvSchema, { TL_ALLOWED_ORIGIN: value })).toThrow(/TL_ALLOWED_ORIGIN/);
  });
});
