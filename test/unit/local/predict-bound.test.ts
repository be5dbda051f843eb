import { afterEach, describe, expect, it } from 'vitest';
import type { Server } from 'node:http';
import { createLocalGateway, listen, type LocalGatewayTenant } from '../../../shared/local/server.js';

/**
 * The embedded gateway's bound on predictions in flight: beyond it a caller gets
 * 429 with Retry-After at once, other routes are not affected, and a slot frees
 * when a prediction ends, whether it answered or threw.
 */
describe('bound on predictions in flight', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server?.closeAllConnections();
  });

  async function start(bound: number) {
    const releases: Array<(fail: boolean) => void> = [];
    let started = 0;
    const tenant: LocalGatewayTenant = {
      id: 't',
      predict: (event) => {
        if (event.resource !== '/models/{model}/predict') return Promise.resolve({ statusCode: 200, body: '{"models":[]}' });
        started++;
        return new Promise((resolve, reject) =>
          releases.push((fail) => (fail ? reject(new Error('model fault')) : resolve({ statusCode: 200, body: '{"predictions":[]}' }))),
        );
      },
      uploads: () => Promise.resolve({ statusCode: 200, body: '{}' }),
      verifyUpload: () => false,
      storeUpload: () => Promise.resolve(),
    };
    server = createLocalGateway({ tenantByApiKey: (k) => (k === 'key' ? tenant : undefined), tenantById: () => tenant, maxInFlightPredicts: bound });
    const url = await listen(server, 0);
    const call = (path: string, method = 'POST') =>
      fetch(`${url}${path}`, {
        method,
        headers: { 'x-api-key': 'key', 'content-type': 'application/json' },
        body: method === 'POST' ? '{"instances":[{"image":"aGk="}]}' : undefined,
      });
    const until = async (n: number) => {
      for (let i = 0; i < 200 && started < n; i++) await new Promise((r) => setTimeout(r, 10));
      expect(started).toBe(n);
    };
    return { call, releases, until };
  }

  it('answers 429 with Retry-After beyond the bound, and serves again once a slot frees', async () => {
    const { call, releases, until } = await start(2);
    const first = [call('/models/m/predict'), call('/models/m/predict')];
    await until(2);
    const refused = await call('/models/m/predict');
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toMatchObject({ error: { code: 'TOO_MANY_REQUESTS' } });
    // Other routes are not bounded by predictions.
    expect((await call('/models', 'GET')).status).toBe(200);
    // One prediction fails inside the handler, the other answers: both free their slot.
    releases[0](true);
    releases[1](false);
    expect((await first[0]).status).toBe(500);
    expect((await first[1]).status).toBe(200);
    const again = call('/models/m/predict');
    await until(3);
    releases[2](false);
    expect((await again).status).toBe(200);
  });
});
