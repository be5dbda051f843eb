import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { apiEvent, vectorModelMetadata } from '../../helpers/api.js';
import { tempStore } from '../../helpers/temp-store.js';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { createHandler } from '../../../functions/predict/handler.js';
import { createModelCache } from '../../../functions/predict/model-cache.js';
import { buildHeadModel } from '../../../shared/ml/architectures.js';
import { saveModel } from '../../../shared/ml/model-io.js';
import { aliasKey, setAlias, versionPrefix, writeMetadata } from '../../../shared/models/registry.js';

const V1 = 'v20260101000000-aaaaaa';
const V2 = 'v20260102000000-bbbbbb';
const V3 = 'v20260103000000-cccccc';

describe('model cache: what a predict call reads from the store', () => {
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  let handler: ReturnType<typeof createHandler>;
  const predict = async () => {
    const res = await handler(apiEvent('POST', '/models/{model}/predict', { model: 'm' }, { instances: [{ features: [1, 2] }] }));
    return { status: res.statusCode, body: JSON.parse(res.body) };
  };
  const reads = (get: { mock: { calls: unknown[][] } }, key: string) => get.mock.calls.filter(([k]) => k === key).length;

  beforeEach(async () => {
    ({ store, cleanup } = await tempStore('tl-model-cache-'));
    const meta = vectorModelMetadata('m', V1);
    const head = await buildHeadModel({ embeddingSize: 2, tasks: meta.tasks, sharing: { method: 'hard', trunk: [] } });
    for (const version of [V1, V2, V3]) await saveModel(head, store, versionPrefix('m', version));
    head.dispose();
    for (const version of [V1, V2]) await writeMetadata(store, vectorModelMetadata('m', version));
    await setAlias(store, 'm', 'latest', V1);
    handler = createHandler({ store, models: createModelCache(store) }, () => {});
  });
  afterEach(() => cleanup());

  it('reads a version’s metadata once, the alias on every call, and serves a promotion at once', async () => {
    // Prepare
    const get = vi.spyOn(store, 'get');

    // Act
    const first = await predict();
    const second = await predict();
    await setAlias(store, 'm', 'latest', V2);
    const promoted = await predict();

    // Assess
    expect([first.status, first.body.version, second.body.version, promoted.status, promoted.body.version]).toEqual([200, V1, V1, 200, V2]);
    expect(reads(get, `${versionPrefix('m', V1)}/metadata.json`)).toBe(1);
    expect(reads(get, `${versionPrefix('m', V2)}/metadata.json`)).toBe(1);
    expect(reads(get, aliasKey('m', 'latest'))).toBe(3 + 1); // setAlias reads it too
  });

  it('keeps no metadata it could not read: a version broken and then repaired is served', async () => {
    // Prepare: latest points at a version whose metadata is not JSON.
    await store.put(`${versionPrefix('m', V3)}/metadata.json`, '{"model": ');
    await setAlias(store, 'm', 'latest', V3);

    // Act
    const broken = await predict();
    await writeMetadata(store, vectorModelMetadata('m', V3));
    const repaired = await predict();

    // Assess
    expect([broken.status, broken.body.error?.code]).toEqual([409, 'MODEL_BROKEN']);
    expect([repaired.status, repaired.body.version]).toEqual([200, V3]);
  });

  it('warms a version: its files are read then, and its first predict reads none of them', async () => {
    // Prepare
    const models = createModelCache(store);
    handler = createHandler({ store, models }, () => {});
    const get = vi.spyOn(store, 'get');
    const versionFiles = () => get.mock.calls.filter(([k]) => String(k).startsWith(`${versionPrefix('m', V1)}/`)).length;

    // Act: the platform resolves the served version through the cache, then warms it.
    const meta = await models.readVersion('m', V1);
    await models.warm(meta!);
    const readByWarm = versionFiles();
    const first = await predict();

    // Assess: the metadata and the heads (model.json, weights) were read before, nothing after.
    expect(readByWarm).toBeGreaterThanOrEqual(3);
    expect(first.status).toBe(200);
    expect(versionFiles()).toBe(readByWarm);
  });
});
