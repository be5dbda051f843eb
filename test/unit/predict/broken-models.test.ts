import { apiEvent, vectorModelMetadata } from '../../helpers/api.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { tempStore } from '../../helpers/temp-store.js';
import { createHandler } from '../../../functions/predict/handler.js';
import { createModelCache } from '../../../functions/predict/model-cache.js';
import { setAlias, writeMetadata } from '../../../shared/models/registry.js';

const event = apiEvent;

describe('one broken model among good ones', () => {
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  let handler: ReturnType<typeof createHandler>;
  beforeEach(async () => {
    ({ store, cleanup } = await tempStore('tl-broken-'));
    for (const [i, model] of ['good', 'bad'].entries()) {
      const version = `v2026010${i + 1}000000-abcdef`;
      await writeMetadata(store, vectorModelMetadata(model, version));
      await setAlias(store, model, 'latest', version);
    }
    handler = createHandler({ store, models: createModelCache(store) }, () => {});
  });
  afterEach(() => cleanup());

  it.each([
    ['metadata that is not JSON', 'models/bad/v20260102000000-abcdef/metadata.json', '{"model": "bad", '],
    ['metadata that breaks its schema', 'models/bad/v20260102000000-abcdef/metadata.json', JSON.stringify({ model: 'bad', tasks: 'none' })],
    ['an alias that is not JSON', 'models/bad/aliases/latest.json', '\u0000\u0001garbage'],
  ])('lists the others and answers MODEL_BROKEN for the model with %s', async (_what, key, content) => {
    // Prepare
    await store.put(key, content);

    // Act
    const list = await handler(event('GET', '/models', null));
    const describe_ = await handler(event('GET', '/models/{model}', { model: 'bad' }));
    const predict = await handler(event('POST', '/models/{model}/predict', { model: 'bad' }, { instances: [{ features: [1, 2] }] }));
    const rollback = await handler(event('POST', '/models/{model}/rollback', { model: 'bad' }));

    // Assess
    expect(list.statusCode).toBe(200);
    const models = JSON.parse(list.body).models as Array<{ model: string; version?: string; error?: { code: string; message: string } }>;
    expect(models.find((m) => m.model === 'good')).toMatchObject({ version: 'v20260101000000-abcdef' });
    expect(models.find((m) => m.model === 'bad')).toMatchObject({ error: { code: 'MODEL_BROKEN', message: expect.stringContaining(key) } });
    for (const res of [describe_, predict]) {
      expect(res.statusCode).toBe(409);
      expect(JSON.parse(res.body).error.code).toBe('MODEL_BROKEN');
    }
    // Rollback is how a broken version is left behind: it needs only a readable alias.
    expect(rollback.statusCode).toBe(409);
    expect(JSON.parse(rollback.body).error.code).toBe(key.includes('aliases') ? 'MODEL_BROKEN' : 'NO_PREVIOUS_VERSION');
    expect((await handler(event('GET', '/models/{model}', { model: 'good' }))).statusCode).toBe(200);
  });
});
