import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadTenants } from '../../infra/lib/tenants.js';

describe('loadTenants', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tenants-'));
    file = path.join(dir, 'tenants.json');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('makes a tenant with defaults from -c tenant=<id> when there is no tenants.json', () => {
    const [t] = loadTenants({ contextTenant: 'acme', file });

    expect(t).toMatchObject({
      id: 'acme',
      capacity: 'spot',
      throttle: { rateLimit: 10, burstLimit: 20 },
      quota: { limit: 10000, period: 'DAY' },
      destroyData: false,
    });
  });

  it('takes every tenant of tenants.json, or the named ones with their settings', async () => {
    await writeFile(
      file,
      JSON.stringify([
        { id: 'acme', capacity: 'on-demand' },
        { id: 'globex', quota: { limit: 50, period: 'MONTH' } },
      ]),
    );

    expect(loadTenants({ file }).map((t) => t.id)).toEqual(['acme', 'globex']);
    expect(loadTenants({ contextTenant: 'globex', file })).toMatchObject([{ id: 'globex', quota: { limit: 50, period: 'MONTH' } }]);
    expect(loadTenants({ contextTenant: 'acme,initech', file }).map((t) => [t.id, t.capacity])).toEqual([
      ['acme', 'on-demand'],
      ['initech', 'spot'],
    ]);
  });

  it('defaults the alarm, RUNNABLE, retention and concurrency settings, and checks them', async () => {
    const [t] = loadTenants({ contextTenant: 'acme', file });

    expect(t.alarmEmail).toBeUndefined();
    expect(t).toMatchObject({
      runnableTimeoutMinutes: 60,
      jobsRetentionDays: 30,
      apiLatencyP99AlarmMs: 10000,
      concurrency: { predict: 20, uploads: 5, preprocess: 4, preprocessMaxConcurrency: 2, jobEvents: 2, authorizer: 5 },
    });
    await writeFile(file, JSON.stringify([{ id: 'acme', alarmEmail: 'not an email' }]));
    expect(() => loadTenants({ file })).toThrow(/email/i);
    await writeFile(file, JSON.stringify([{ id: 'acme', concurrency: { preprocess: 2, preprocessMaxConcurrency: 3 } }]));
    expect(() => loadTenants({ file })).toThrow(/preprocessMaxConcurrency/);
    await writeFile(file, JSON.stringify([{ id: 'acme', runnableTimeoutMinutes: 5 }]));
    expect(() => loadTenants({ file })).toThrow();
    await writeFile(file, JSON.stringify([{ id: 'acme', alarmEmail: 'ops@acme.example', concurrency: { predict: 100 } }]));
    expect(loadTenants({ file })[0]).toMatchObject({ alarmEmail: 'ops@acme.example', concurrency: { predict: 100, preprocess: 4 } });
  });

  it('rejects bad ids, unknown settings and duplicates', async () => {
    expect(() => loadTenants({ contextTenant: 'Acme_Corp', file })).toThrow(/lowercase/);
    await writeFile(file, JSON.stringify([{ id: 'acme', colour: 'red' }]));
    expect(() => loadTenants({ file })).toThrow();
    await writeFile(file, JSON.stringify([{ id: 'acme' }, { id: 'acme' }]));
    expect(() => loadTenants({ file })).toThrow(/unique/);
  });
});
