import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempStore } from '../../helpers/temp-store.js';
import { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { publishPrototypeModel } from '../../../shared/ml/prototype-job.js';
import { CANDIDATE_ALIAS } from '../../../shared/models/promotion.js';
import { readAlias } from '../../../shared/models/registry.js';
import { readReport } from '../../../shared/data/shards.js';
import { COLOURS, FAST, runJob, writeDataset, writeTinyBase } from './fixtures.js';

/** Jobs share one store, in order: each test starts from the `latest` the one before left. */
describe("promotion gate on the serving version's own test split", () => {
  let cleanup: () => Promise<void>;
  let store: FsObjectStore;
  const run = (o: Parameters<typeof writeDataset>[1]) => runJob(store, o);
  const latest = async () => (await readAlias(store, 'g', 'latest'))!.version;

  beforeAll(async () => {
    ({ store, cleanup } = await tempStore('tl-gate-'));
    await writeTinyBase(store);
    const first = await run({ dataset: 'g', hash: 'g1', classes: COLOURS, spec: { base: 'tiny', training: FAST } });
    expect(first.status.promoted).toBe(true);
  });
  afterAll(async () => cleanup());

  it('refuses a version trained on shuffled labels that looks fine on its own test split', async () => {
    // Prepare: blue images labelled green, green labelled red, red labelled blue (in every split)
    const serving = await latest();
    const shifted: Record<string, number> = { green: 0, red: 1, blue: 2 };

    // Act
    const { version, status, report } = await run({
      dataset: 'g',
      hash: 'g3',
      classes: COLOURS,
      imageClass: (l) => shifted[l],
      seed: 300,
      spec: { base: 'tiny', training: FAST },
    });

    // Assess: good on its own split, refused on the serving version's
    const own = report.transfer.promotion.comparisons.find((c: { on: string }) => c.on === 'test split of this job');
    expect(own.candidate).toBeGreaterThan(own.previous);
    expect(status.promoted).toBe(false);
    expect(report.transfer.promotion.reason).toMatch(/task "class" accuracy fell by .* on the test split of g@g1/);
    expect(await latest()).toBe(serving);
    expect((await readAlias(store, 'g', CANDIDATE_ALIAS))!.version).toBe(version);
  });

  it('refuses a 2-class prototype upload over the 3-class trained model', async () => {
    // Prepare
    const serving = await latest();
    const { preparedPrefix } = await writeDataset(store, {
      dataset: 'g-few',
      hash: 'p1',
      classes: ['blue', 'green'],
      perSplit: { train: 4, validation: 0, test: 0 },
      spec: { model: 'g', base: 'tiny', mode: 'prototype' },
    });

    // Act
    const published = await publishPrototypeModel({ store, report: await readReport(store, preparedPrefix) });

    // Assess
    expect(published.promotion.promote).toBe(false);
    expect(published.promotion.comparisons.map((c) => c.on)).toEqual(['test split of g@g1']);
    expect(published.promotion.reason).toMatch(/task "class" (loses class "red"|accuracy fell by .* on the test split of g@g1)/);
    expect(await latest()).toBe(serving);
  });

  it("measures a version without test records on the serving version's split, and refuses when that has none either", async () => {
    // Act: good labels, no test records: compared on g1's test split
    const second = await run({
      dataset: 'g',
      hash: 'g2',
      classes: COLOURS,
      perSplit: { test: 0 },
      seed: 600,
      spec: { base: 'tiny', training: FAST, promotion: { margin: 0.5 } },
    });

    // Assess
    expect(second.status.promoted, second.report.transfer.promotion.reason).toBe(true);
    expect(second.report.transfer.promotion.comparisons.map((c: { on: string }) => c.on)).toEqual(['test split of g@g1']);
    expect(await latest()).toBe(second.version);

    // Act: the serving version (g2) has no test records, nor has the new one
    const third = await run({ dataset: 'g', hash: 'g4', classes: COLOURS, perSplit: { test: 0 }, seed: 900, spec: { base: 'tiny', training: FAST } });

    // Assess
    expect(third.status.promoted).toBe(false);
    expect(third.report.transfer.promotion.reason).toMatch(
      /^kept as a candidate, not promoted: it could not be compared with .*this job has no test records; .* has no test records \(g@g2\)/,
    );
    expect(await latest()).toBe(second.version);
  });
});
