import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { vectorModelMetadata } from '../../helpers/api.js';
import { tempStore } from '../../helpers/temp-store.js';
import { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import {
  listModels,
  listVersions,
  ModelNotFoundError,
  newVersionId,
  readAlias,
  resolveModel,
  setAlias,
  writeMetadata,
} from '../../../shared/models/registry.js';
import type { ModelMetadata } from '../../../shared/schemas/model.js';

const metaFor = (model: string, version: string): ModelMetadata => vectorModelMetadata(model, version);

describe('model registry', () => {
  let cleanup: () => Promise<void>;
  let store: FsObjectStore;
  beforeEach(async () => {
    ({ store, cleanup } = await tempStore('tl-reg-'));
  });
  afterEach(async () => cleanup());

  it('makes version ids that sort by time and are unique', () => {
    const a = newVersionId(new Date('2026-01-01T00:00:00Z'));
    const b = newVersionId(new Date('2026-01-01T00:00:01Z'));
    expect(a < b).toBe(true);
    expect(a).toMatch(/^v20260101000000-[0-9a-f]{6}$/);
    expect(newVersionId()).not.toBe(newVersionId());
  });

  it('resolves latest through the alias and remembers the previous version', async () => {
    // Prepare
    const v1 = newVersionId(new Date('2026-01-01T00:00:00Z'));
    const v2 = newVersionId(new Date('2026-01-02T00:00:00Z'));
    await writeMetadata(store, metaFor('m', v1));
    await writeMetadata(store, metaFor('m', v2));
    // Act
    await setAlias(store, 'm', 'latest', v1);
    await setAlias(store, 'm', 'latest', v2);
    // Assess
    expect((await resolveModel(store, 'm')).version).toBe(v2);
    expect((await resolveModel(store, 'm', v1)).version).toBe(v1);
    expect(await readAlias(store, 'm', 'latest')).toMatchObject({ version: v2, previous: v1 });
    expect(await listModels(store)).toEqual(['m']);
    expect(await listVersions(store, 'm')).toEqual([v1, v2]);
  });

  it('does not list or serve a version without metadata', async () => {
    const v = newVersionId();
    await store.put(`models/m/${v}/model.json`, '{}');
    expect(await listVersions(store, 'm')).toEqual([]);
    await expect(resolveModel(store, 'm', v)).rejects.toBeInstanceOf(ModelNotFoundError);
    await expect(resolveModel(store, 'm')).rejects.toBeInstanceOf(ModelNotFoundError);
    await expect(resolveModel(store, '../etc')).rejects.toBeInstanceOf(ModelNotFoundError);
  });
});
