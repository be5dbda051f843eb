import { readFile, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempStore, type TempStore } from '../../helpers/temp-store.js';

describe('the local bucket’s injected disk faults', () => {
  let t: TempStore;
  beforeEach(async () => {
    t = await tempStore('tl-fault-', { faultFile: true });
  });
  afterEach(() => t.cleanup());

  it('fails every write with the named errno while the fault file holds it, and reads still work', async () => {
    await t.store.put('a.txt', 'one');
    await writeFile(t.faultFile!, 'ENOSPC');
    await expect(t.store.put('b.txt', 'two')).rejects.toMatchObject({ code: 'ENOSPC' });
    await expect(t.store.delete('a.txt')).rejects.toMatchObject({ code: 'ENOSPC' });
    expect((await t.store.get('a.txt')).toString()).toBe('one');
  });

  it('armed with CODE@regex, lets writes through until one matches, then fails that one and every later write', async () => {
    await writeFile(t.faultFile!, 'EROFS@^models/m/[^/]+/report\\.json$');
    await t.store.put('models/m/v1/model.json', '{}');
    await t.store.put('models/other/v1/report.json', '{}');
    await expect(t.store.put('models/m/v1/report.json', '{}')).rejects.toMatchObject({ code: 'EROFS' });
    expect(await readFile(t.faultFile!, 'utf8')).toBe('EROFS');
    await expect(t.store.put('jobs/j/status.json', '{}')).rejects.toMatchObject({ code: 'EROFS' });
    expect((await t.store.list('models/')).map((o) => o.key).sort()).toEqual(['models/m/v1/model.json', 'models/other/v1/report.json']);
  });
});
