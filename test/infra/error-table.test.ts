import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/predict/handler.js';
import { createModelCache } from '../../functions/predict/model-cache.js';
import { createLocalGateway, listen, type LocalGatewayTenant } from '../../shared/local/server.js';
import { ErrorCodeSchema } from '../../shared/schemas/errors.js';
import { tempStore, type TempStore } from '../helpers/temp-store.js';
import { synthTenants } from './synth.js';

/**
 * The README's error table (HTTP API → Errors) is a claim about two gateways: API
 * Gateway as the CDK stack configures it, and the embedded default. This test holds
 * the whole table to both, so neither the docs nor one side can drift alone.
 */

const README = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../README.md');

interface Answer {
  status: number;
  code: string;
}
interface Row {
  case: string;
  embedded?: Answer;
  cloud?: Answer;
  answeredBy: string;
}

const parseAnswer = (cell: string): Answer | undefined => {
  if (cell === '—') return undefined;
  const m = /^(\d{3}) `([A-Z_]+)`$/.exec(cell);
  if (!m) throw new Error(`cannot read answer cell ${JSON.stringify(cell)}`);
  return { status: Number(m[1]), code: m[2] };
};

/** The rows of the Markdown table whose header starts `| case | embedded default | API Gateway | answered by |`. */
export function parseErrorTable(markdown: string): Row[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^\|\s*case\s*\|\s*embedded default\s*\|\s*API Gateway\s*\|\s*answered by\s*\|$/.test(l.trim()));
  if (start < 0) throw new Error('README has no error table');
  const rows: Row[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line
      .trim()
      .slice(1, -1)
      .split('|')
      .map((c) => c.trim());
    if (cells.length !== 4) throw new Error(`error table row has ${cells.length} cells: ${line}`);
    rows.push({ case: cells[0], embedded: parseAnswer(cells[1]), cloud: parseAnswer(cells[2]), answeredBy: cells[3].replace(/`/g, '') });
  }
  return rows;
}

/** Each gateway response of the synthesised stack: its type, status and the code in its body template. */
function gatewayResponses(template: Template): Map<string, Answer> {
  const out = new Map<string, Answer>();
  for (const r of Object.values(template.findResources('AWS::ApiGateway::GatewayResponse')) as { Properties: Record<string, any> }[]) {
    const body = String(r.Properties.ResponseTemplates?.['application/json'] ?? '');
    const code = /"error":\{"code":"([A-Z_]+)"/.exec(body)?.[1];
    if (!code) throw new Error(`gateway response ${r.Properties.ResponseType} has no error code in ${body}`);
    out.set(String(r.Properties.ResponseType), { status: Number(r.Properties.StatusCode), code });
  }
  return out;
}

describe('README error table', () => {
  let rows: Row[];
  beforeAll(async () => {
    rows = parseErrorTable(await readFile(README, 'utf8'));
  });

  it('speaks only codes of the one vocabulary', () => {
    expect(rows.length).toBeGreaterThan(5);
    for (const r of rows) for (const a of [r.embedded, r.cloud]) if (a) expect(ErrorCodeSchema.options, r.case).toContain(a.code);
  });

  it('matches the gateway responses of the synthesised tenant stack, all of them', () => {
    const responses = gatewayResponses(synthTenants([{ id: 'acme' }]).templates[0]);
    const documented = new Set<string>();
    for (const r of rows) {
      if (r.answeredBy === 'function') {
        // The same handler answers on both sides, and no gateway response may pre-empt it.
        expect(r.cloud, r.case).toEqual(r.embedded);
        expect(
          [...responses.values()].filter((g) => g.code === r.cloud?.code && g.status === r.cloud.status),
          r.case,
        ).toEqual([]);
      } else if (r.answeredBy === 'embedded gateway') {
        expect(r.cloud, `${r.case}: only the embedded gateway answers it`).toBeUndefined();
      } else {
        const g = responses.get(r.answeredBy);
        expect(g, `${r.case}: the stack has no ${r.answeredBy} gateway response`).toBeDefined();
        expect(r.cloud, r.case).toEqual(g);
        documented.add(r.answeredBy);
      }
    }
    expect([...responses.keys()].filter((t) => !documented.has(t))).toEqual([]);
  });

  describe('against the embedded gateway', () => {
    let bucket: TempStore;
    let server: Server;
    let url: string;
    let release: () => void = () => {};
    let holding = 0;

    beforeAll(async () => {
      bucket = await tempStore('tl-error-table-');
      const predict = createHandler({ store: bucket.store, models: createModelCache(bucket.store) }, () => {});
      const tenant: LocalGatewayTenant = {
        id: 't',
        // The real predict handler over an empty bucket; model "hold" waits, to fill the bound on predictions in flight.
        predict: async (event) => {
          if (event.pathParameters?.model !== 'hold') return predict(event);
          holding++;
          await new Promise<void>((resolve) => (release = resolve));
          return { statusCode: 200, body: '{}' };
        },
        uploads: () => Promise.resolve({ statusCode: 200, body: '{}' }),
        verifyUpload: () => false,
        storeUpload: () => Promise.resolve(),
      };
      server = createLocalGateway({ tenantByApiKey: (k) => (k === 'good-key' ? tenant : undefined), tenantById: () => tenant, maxInFlightPredicts: 1 });
      url = await listen(server, 0);
    });
    afterAll(async () => {
      release();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await bucket.cleanup();
    });

    const call = (method: string, p: string, opts: { key?: string; body?: string } = {}) =>
      fetch(`${url}${p}`, {
        method,
        headers: { ...(opts.key === undefined ? { 'x-api-key': 'good-key' } : opts.key ? { 'x-api-key': opts.key } : {}), 'content-type': 'application/json' },
        body: opts.body,
      });
    const instances = JSON.stringify({ instances: [{ image: 'aGk=' }] });

    /** One request per row the embedded default answers; a new row without a probe fails the test. */
    const probes: Record<string, () => Promise<Response>> = {
      '`x-api-key` missing': () => call('GET', '/models', { key: '' }),
      '`x-api-key` not a key of this tenant': () => call('GET', '/models', { key: 'tl_wrong' }),
      'no such route': () => call('GET', '/nowhere'),
      'a method the route does not have': () => call('DELETE', '/models/m'),
      'predict body outside the request model (no instances, over 32, …)': () => call('POST', '/models/m/predict', { body: '{"instances":[]}' }),
      'body over 6 MB (embedded) or 10 MB (API Gateway; see "Request size")': () =>
        call('POST', '/models/m/predict', { body: JSON.stringify({ instances: [{ image: 'A'.repeat(6 * 1024 * 1024) }] }) }),
      'more than `TL_MAX_INFLIGHT_PREDICTS` (default 16) predictions in flight': async () => {
        const first = call('POST', '/models/hold/predict', { body: instances });
        for (let i = 0; i < 200 && holding === 0; i++) await new Promise((r) => setTimeout(r, 10));
        const refused = await call('POST', '/models/m/predict', { body: instances });
        release();
        await first;
        return refused;
      },
      'body is not JSON': () => call('POST', '/models/m/predict', { body: '{not json' }),
      'model name with characters other than letters, digits, `-`, `_`': () => call('GET', '/models/a%20b'),
      'no such model': () => call('GET', '/models/nobody'),
    };

    it('answers each row as its embedded column says', async () => {
      const embeddedRows = rows.filter((r) => r.embedded);
      expect(embeddedRows.map((r) => r.case).filter((c) => !probes[c])).toEqual([]);
      for (const r of embeddedRows) {
        const res = await probes[r.case]();
        const body = (await res.json()) as { error?: { code?: string } };
        expect({ status: res.status, code: body.error?.code }, r.case).toEqual(r.embedded);
      }
    });
  });
});
