import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vectorModelMetadata } from '../../helpers/api.js';
import { runCli } from '../../../shared/local/cli.js';
import { appendEpoch } from '../../../shared/jobs/status.js';
import { putJson } from '../../../shared/ports/object-store.js';
import { readAlias, setAlias, writeMetadata } from '../../../shared/models/registry.js';
import { MAX_JOB_HISTORY } from '../../../shared/schemas/job.js';
import { startTestPlatform, type TestPlatform } from '../../helpers/platform.js';
import { sampleReport } from '../../helpers/sample-report.js';
import { captureOutput } from '../cli/fake-platform.js';

const V1 = 'v20260101000000-aaaaaa';
const V2 = 'v20260102000000-bbbbbb';

describe('dashboard API through the embedded gateway', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await startTestPlatform();
    const store = t.platform.defaultTenant.store;
    for (const version of [V1, V2]) {
      await writeMetadata(store, vectorModelMetadata('m', version));
      await putJson(store, `models/m/${version}/report.json`, sampleReport('m', version));
    }
    await setAlias(store, 'm', 'latest', V1);
  });
  afterAll(() => t?.close());

  it('serves versions and reports behind the API key', async () => {
    expect((await t.call('GET', '/models/m/versions')).body.versions).toHaveLength(2);
    expect((await t.call('GET', `/models/m/versions/${V2}/report`)).body.version).toBe(V2);
    const noKey = await t.call('GET', '/models/m/versions', undefined, { 'x-api-key': '' });
    expect([noKey.status, noKey.body.error.code]).toEqual([403, 'INVALID_API_KEY']);
    const badKey = await t.call('GET', `/models/m/versions/${V1}/report`, undefined, { 'x-api-key': 'tl_wrong_wrong_wrong' });
    expect([badKey.status, badKey.body.error.code]).toEqual([403, 'INVALID_API_KEY']);
    const wrongMethod = await t.call('GET', '/models/m/promote');
    expect([wrongMethod.status, wrongMethod.body.error.code]).toEqual([405, 'METHOD_NOT_ALLOWED']);
  });

  it('serves the page with a Content-Security-Policy that allows no inline script', async () => {
    const res = await fetch(t.platform.url);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(await res.text()).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  });

  it('serves the bundled script and stylesheet from its own origin, and nothing else under /assets', async () => {
    const js = await fetch(`${t.platform.url}/assets/app.js`);
    expect([js.status, js.headers.get('content-type')]).toEqual([200, 'text/javascript; charset=utf-8']);
    expect((await js.text()).length).toBeGreaterThan(10_000);
    const css = await fetch(`${t.platform.url}/assets/app.css`);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    const missing = await fetch(`${t.platform.url}/assets/nope.js`);
    expect(missing.status).toBe(404);
  });

  it('`tl promote <model> <version>` moves latest; an unknown version exits 1 with the code', async () => {
    // Act
    const stdout = captureOutput();
    const code = await runCli(['promote', 'm', V2, '--endpoint', t.platform.url, '--api-key', t.apiKey], {
      stdout,
      stderr: captureOutput(),
      env: {},
      cwd: '/',
    });

    // Assess
    expect(code).toBe(0);
    expect(JSON.parse(stdout.text())).toEqual({ model: 'm', alias: 'latest', version: V2, previous: V1 });
    expect((await readAlias(t.platform.defaultTenant.store, 'm', 'latest'))?.version).toBe(V2);
    const stderr = captureOutput();
    const bad = await runCli(['promote', 'm', 'v20991231000000-cccccc', '--endpoint', t.platform.url, '--api-key', t.apiKey], {
      stdout: captureOutput(),
      stderr,
      env: {},
      cwd: '/',
    });
    expect(bad).toBe(1);
    expect(stderr.text()).toContain('VERSION_NOT_FOUND');
    expect(await runCli(['promote', 'm'], { stdout: captureOutput(), stderr: captureOutput(), env: {}, cwd: '/' })).toBe(2);
  });
});

describe('appendEpoch (job status history)', () => {
  it('replaces repeated epochs of a resumed job', () => {
    const h = appendEpoch([{ epoch: 1 }, { epoch: 2 }, { epoch: 3 }], { epoch: 2, loss: 0.1 });
    expect(h).toEqual([{ epoch: 1 }, { epoch: 2, loss: 0.1 }]);
  });

  it('stays bounded over a long run, keeping the first and the newest epoch', () => {
    let h: Array<Record<string, number>> = [];
    for (let e = 1; e <= 5000; e++) h = appendEpoch(h, { epoch: e, loss: 1 / e });
    expect(h.length).toBeLessThanOrEqual(MAX_JOB_HISTORY);
    expect(h.length).toBeGreaterThan(MAX_JOB_HISTORY / 2);
    expect(h[0].epoch).toBe(1);
    expect(h.at(-1)?.epoch).toBe(5000);
    const epochs = h.map((x) => x.epoch);
    expect(epochs).toEqual([...epochs].sort((a, b) => a - b));
  });
});
