import { readdir, rm, utimes, writeFile, mkdir } from 'node:fs/promises';
import { vectorModelMetadata } from '../../helpers/api.js';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { tempStore } from '../../helpers/temp-store.js';
import { collectGarbage } from '../../../shared/models/garbage.js';
import { putJson } from '../../../shared/ports/object-store.js';
import { setAlias, writeMetadata } from '../../../shared/models/registry.js';
import type { ModelMetadata } from '../../../shared/schemas/model.js';

const meta = (model: string, version: string, hash: string): ModelMetadata => vectorModelMetadata(model, version, { name: 'd', hash });

const status = (jobId: string, hash: string, state: string) => ({
  jobId,
  model: 'm',
  dataset: 'd',
  datasetHash: hash,
  state,
  progress: 0,
  metrics: {},
  createdAt: 'x',
  updatedAt: 'x',
});

describe('collectGarbage', () => {
  let dir: string;
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ root: dir, store, cleanup } = await tempStore('tl-gc-'));
  });
  afterEach(() => cleanup());

  const keys = async (prefix: string) => (await store.list(prefix)).map((o) => o.key);

  it('removes incomplete versions and unused prepared copies, and keeps everything an alias, a running job or the newest copy needs', async () => {
    // Prepare: v1 complete and latest; v0 complete and latest's previous; vHalf and vOld incomplete;
    // vNamed incomplete but named by a `stable` alias (kept: an alias may point at it).
    const [v0, v1, vHalf, vNamed, vDone] = [
      'v20260101000000-000000',
      'v20260102000000-111111',
      'v20260103000000-222222',
      'v20260104000000-333333',
      'v20260105000000-444444',
    ];
    await writeMetadata(store, meta('m', v0, 'h0'));
    await writeMetadata(store, meta('m', v1, 'h1'));
    await writeMetadata(store, meta('m', vDone, 'h5'));
    await setAlias(store, 'm', 'latest', v0);
    await setAlias(store, 'm', 'latest', v1);
    await store.put(`models/m/${vHalf}/model.json`, '{}');
    await store.put(`models/m/${vHalf}/weights.bin`, 'w');
    await store.put(`models/m/${vNamed}/model.json`, '{}');
    await putJson(store, 'models/m/aliases/stable.json', { version: vNamed });
    for (const h of ['h0', 'h1', 'h2', 'h3', 'h4', 'h5']) await store.put(`prepared/d/${h}/report.json`, '{}');
    // h4 is the newest copy; h3 belongs to a job still running; h2 and h5 are not needed.
    const t0 = Date.now() / 1000 - 100;
    for (const [i, h] of ['h0', 'h1', 'h2', 'h3', 'h5', 'h4'].entries()) await utimes(path.join(dir, 'prepared/d', h, 'report.json'), t0 + i, t0 + i);
    await putJson(store, 'jobs/j3/status.json', status('j3', 'h3', 'running'));
    await putJson(store, 'jobs/j2/status.json', status('j2', 'h2', 'failed'));

    // Act
    const report = await collectGarbage(store);

    // Assess
    expect(report.incompleteVersions).toEqual([`m/${vHalf}`]);
    expect(report.preparedCopies.sort()).toEqual(['d/h2', 'd/h5']);
    expect(await keys(`models/m/${vHalf}/`)).toEqual([]);
    expect(await keys(`models/m/${vNamed}/`)).toEqual([`models/m/${vNamed}/model.json`]);
    for (const v of [v0, v1, vDone]) expect(await keys(`models/m/${v}/`)).toContain(`models/m/${v}/metadata.json`);
    expect((await keys('prepared/')).map((k) => k.split('/')[2]).sort()).toEqual(['h0', 'h1', 'h3', 'h4']);
    // No empty folders are left where objects were deleted.
    expect(await readdir(path.join(dir, 'models/m'))).not.toContain(vHalf);
  });

  it('deletes nothing it cannot account for when an alias is unreadable', async () => {
    await store.put('models/m/v20260103000000-222222/model.json', '{}');
    await store.put('models/m/aliases/latest.json', '{ not json');
    await store.put('prepared/d/a/report.json', '{}');
    await store.put('prepared/d/b/report.json', '{}');
    const report = await collectGarbage(store);
    expect(report.objectsDeleted).toBe(0);
  });
});

describe('FsObjectStore leftovers', () => {
  let dir: string;
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ root: dir, store, cleanup } = await tempStore('tl-sweep-', { faultFile: true }));
  });
  afterEach(() => cleanup());

  it('prunes the folders a delete empties, up to the bucket root', async () => {
    await store.put('jobs/j/checkpoint/e3/current/weights.bin', 'w');
    await store.put('jobs/j/status.json', '{}');
    await store.delete('jobs/j/checkpoint/e3/current/weights.bin');
    expect(await readdir(path.join(dir, 'jobs/j'))).toEqual(['status.json']);
  });

  it('leaves no temporary file when a write fails, and sweeps old ones and empty folders', async () => {
    await writeFile(`${dir}.fault`, 'ENOSPC');
    await expect(store.put('a/b.txt', 'x')).rejects.toMatchObject({ code: 'ENOSPC' });
    await rm(`${dir}.fault`);
    // What a crash between write and rename leaves: an old temporary file and empty folders.
    await mkdir(path.join(dir, 'x/y/z'), { recursive: true });
    await writeFile(path.join(dir, 'x/y/.tmp-abc'), 'partial');
    const old = Date.now() / 1000 - 3600;
    await utimes(path.join(dir, 'x/y/.tmp-abc'), old, old);
    await writeFile(path.join(dir, 'x/.tmp-new'), 'in progress');
    await store.put('keep/me.txt', 'k');

    const swept = await store.sweep(60_000);

    expect(swept.tempFiles).toBe(1);
    expect((await readdir(dir)).sort()).toEqual(['keep', 'x']);
    expect(await readdir(path.join(dir, 'x'))).toEqual(['.tmp-new']);
  });
});
