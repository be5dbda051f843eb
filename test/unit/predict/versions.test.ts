import { apiEvent } from '../../helpers/api.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { putJson } from '../../../shared/ports/object-store.js';
import { tempStore } from '../../helpers/temp-store.js';
import { createHandler } from '../../../functions/predict/handler.js';
import { createModelCache } from '../../../functions/predict/model-cache.js';
import { readAlias, setAlias, writeMetadata } from '../../../shared/models/registry.js';
import { TrainSpecSchema } from '../../../shared/schemas/spec.js';
import { sampleReport } from '../../helpers/sample-report.js';

const event = apiEvent;

const V1 = 'v20260101000000-aaaaaa';
const V2 = 'v20260102000000-bbbbbb';

describe('versions, reports and promotion (predict handler)', () => {
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  let handler: ReturnType<typeof createHandler>;
  const call = async (...args: Parameters<typeof event>) => {
    const r = await handler(event(...args));
    return { status: r.statusCode, body: JSON.parse(r.body) };
  };

  beforeEach(async () => {
    ({ store, cleanup } = await tempStore('tl-versions-'));
    for (const [i, version] of [V1, V2].entries()) {
      await writeMetadata(store, {
        model: 'm',
        version,
        createdAt: new Date(Date.UTC(2026, 0, i + 1)).toISOString(),
        kind: 'train',
        input: { type: 'vector', size: 2 },
        base: { name: 'none' },
        tasks: [{ name: 'class', type: 'classification', auxiliary: false, labels: ['a', 'b'] }],
        dataset: { name: 'm', hash: 'h' },
        spec: TrainSpecSchema.parse({}),
        metrics: { class: { accuracy: 0.5 + i / 4 } },
      });
    }
    await setAlias(store, 'm', 'latest', V1);
    await setAlias(store, 'm', 'candidate', V2);
    await putJson(store, `models/m/${V1}/report.json`, sampleReport('m', V1));
    handler = createHandler({ store, models: createModelCache(store) }, () => {});
  });
  afterEach(() => cleanup());

  it('lists versions newest first with their aliases and headline metrics', async () => {
    // Act
    const res = await call('GET', '/models/{model}/versions', { model: 'm' });

    // Assess
    expect(res.status).toBe(200);
    expect(res.body.aliases).toEqual({ latest: V1, candidate: V2 });
    expect(res.body.versions.map((v: { version: string }) => v.version)).toEqual([V2, V1]);
    expect(res.body.versions[0]).toMatchObject({ aliases: ['candidate'], headline: { class: { metric: 'accuracy', value: 0.75 } } });
    expect(res.body.versions[1]).toMatchObject({ aliases: ['latest'], tasks: ['class'] });
  });

  it('reads a report through its schema, by version id or alias', async () => {
    const byId = await call('GET', '/models/{model}/versions/{version}/report', { model: 'm', version: V1 });
    const byAlias = await call('GET', '/models/{model}/versions/{version}/report', { model: 'm', version: 'latest' });
    expect(byId.status).toBe(200);
    expect(byId.body.tasks.class.test.confusionMatrix.matrix).toEqual([
      [1, 0],
      [1, 0],
    ]);
    expect(byAlias.body).toEqual(byId.body);
  });

  it('answers 404 REPORT_NOT_FOUND, 404 VERSION_NOT_FOUND, 400 INVALID_VERSION and 409 MODEL_BROKEN', async () => {
    // Prepare: a report that breaks its schema.
    await putJson(store, `models/m/${V2}/report.json`, { ...sampleReport('m', V2), tasks: 'none' });
    const cases: Array<[Record<string, string>, number, string]> = [
      [{ model: 'm', version: 'v20991231000000-cccccc' }, 404, 'VERSION_NOT_FOUND'],
      [{ model: 'm', version: 'stable' }, 404, 'VERSION_NOT_FOUND'],
      [{ model: 'nope', version: V1 }, 404, 'VERSION_NOT_FOUND'],
      [{ model: 'm', version: '../x' }, 400, 'INVALID_VERSION'],
      [{ model: 'a b', version: V1 }, 400, 'INVALID_MODEL_NAME'],
      [{ model: 'm', version: V2 }, 409, 'MODEL_BROKEN'],
    ];
    for (const [params, status, code] of cases) {
      const res = await call('GET', '/models/{model}/versions/{version}/report', params);
      expect([res.status, res.body.error.code], JSON.stringify(params)).toEqual([status, code]);
    }
    await store.delete(`models/m/${V2}/report.json`);
    const missing = await call('GET', '/models/{model}/versions/{version}/report', { model: 'm', version: V2 });
    expect([missing.status, missing.body.error.code]).toEqual([404, 'REPORT_NOT_FOUND']);
    const unknownModel = await call('GET', '/models/{model}/versions', { model: 'nope' });
    expect([unknownModel.status, unknownModel.body.error.code]).toEqual([404, 'MODEL_NOT_FOUND']);
  });

  it('promotes a version to latest, and rollback undoes it', async () => {
    // Act
    const promoted = await call('POST', '/models/{model}/promote', { model: 'm' }, { version: 'candidate' });

    // Assess
    expect(promoted).toEqual({ status: 200, body: { model: 'm', alias: 'latest', version: V2, previous: V1 } });
    expect((await readAlias(store, 'm', 'latest'))?.version).toBe(V2);
    const back = await call('POST', '/models/{model}/rollback', { model: 'm' });
    expect(back.body).toMatchObject({ version: V1, previous: V2 });
  });

  it('refuses a bad promote body with the error contract', async () => {
    const cases: Array<[unknown, number, string]> = [
      [undefined, 400, 'INVALID_REQUEST'],
      ['{"version":', 400, 'INVALID_JSON'],
      [{ version: '../../x' }, 400, 'INVALID_REQUEST'],
      [{ version: V1, extra: 1 }, 400, 'INVALID_REQUEST'],
      [{ version: 'v20991231000000-cccccc' }, 404, 'VERSION_NOT_FOUND'],
    ];
    for (const [body, status, code] of cases) {
      const res = await call('POST', '/models/{model}/promote', { model: 'm' }, body);
      expect([res.status, res.body.error.code], JSON.stringify(body)).toEqual([status, code]);
    }
    expect((await readAlias(store, 'm', 'latest'))?.version).toBe(V1);
  });
});
