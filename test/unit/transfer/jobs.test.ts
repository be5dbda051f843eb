import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempStore } from '../../helpers/temp-store.js';
import { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { runTrainingJob } from '../../../functions/train/core.js';
import { createModelCache } from '../../../functions/predict/model-cache.js';
import { resolveBase } from '../../../shared/ml/base-models.js';
import { loadEmbedder } from '../../../shared/ml/embedder.js';
import { featureLayerOf } from '../../../shared/ml/fine-tune.js';
import { predictOutputs } from '../../../shared/ml/inference.js';
import { loadModel } from '../../../shared/ml/model-io.js';
import { CANDIDATE_ALIAS, rollbackAlias } from '../../../shared/models/promotion.js';
import { readAlias, readMetadata, versionPrefix } from '../../../shared/models/registry.js';
import { COLOURS, FAST, png, runJob, SHAPE, splitImages, writeDataset, writeTinyBase, tonesExtending } from './fixtures.js';

/** Jobs share one store, in order: each test builds on the versions before it. */
describe('transfer in training jobs', () => {
  let cleanup: () => Promise<void>;
  let store: FsObjectStore;
  const run = (o: Parameters<typeof writeDataset>[1]) => runJob(store, o);

  beforeAll(async () => {
    ({ store, cleanup } = await tempStore('tl-transfer-'));
    await writeTinyBase(store);
  });
  afterAll(async () => cleanup());

  it('reports the from-scratch baseline next to the transfer metric, and misses the embedding cache on new images', async () => {
    // Act
    const { version, status, report } = await run({ dataset: 'colours', hash: 'h1', classes: COLOURS, spec: { base: 'tiny', training: FAST } });

    // Assess
    expect(status.embeddingCache).toBe('miss');
    const baseline = report.transfer.baseline;
    expect(baseline.method).toMatch(/32×32/);
    expect(baseline.test.class.accuracy).toBeGreaterThanOrEqual(0);
    expect(baseline.tasks.class.difference).toBeCloseTo(report.tasks.class.test.accuracy - baseline.test.class.accuracy, 6);
    const meta = await readMetadata(store, 'colours', version);
    expect((meta!.metrics.baseline as { verdict: string }).verdict).toMatch(/baseline/);
    expect(meta!.metrics.promotion).toMatchObject({ promote: true, reason: 'first version of the model' });
  });

  it('hits the cache on a second job over the same images with other head settings', async () => {
    // Act: other spec (so another dataset hash), same pixels
    const { status, report } = await run({
      dataset: 'colours',
      hash: 'h2',
      classes: COLOURS,
      spec: { base: 'tiny', sharing: { method: 'hard', trunk: [16] }, training: FAST, promotion: { margin: 1 } },
    });

    // Assess
    expect(status.embeddingCache).toBe('hit');
    expect(report.transfer.embeddingCache).toBe('hit');
    const cached = (await store.list('cache/embeddings/')).map((o) => o.key).filter((k) => /^cache\/embeddings\/tiny~[0-9a-f]{16}\//.test(k));
    // One block and its index for the first job's images (all splits at once); the second job added none.
    expect(cached.filter((k) => k.includes('/blocks/'))).toHaveLength(1);
    expect(cached.filter((k) => k.includes('/index/'))).toHaveLength(1);
  });

  it('refuses to promote a worse version, keeps it as a candidate, and rolls back', async () => {
    // Prepare
    const before = (await readAlias(store, 'colours', 'latest'))!.version;

    // Act: a hopeless learning rate on the same images
    const { version, status, report } = await run({
      dataset: 'colours',
      hash: 'h3',
      classes: COLOURS,
      spec: { base: 'tiny', training: { ...FAST, epochs: 1, learningRate: 1e-9 } },
    });

    // Assess: latest untouched, the version is the candidate, the reason names the task
    expect(status.promoted).toBe(false);
    expect((await readAlias(store, 'colours', 'latest'))!.version).toBe(before);
    expect((await readAlias(store, 'colours', CANDIDATE_ALIAS))!.version).toBe(version);
    expect(report.transfer.promotion.reason).toMatch(/task "class" accuracy fell by/);

    // Act: rollback of latest goes to the version before it
    const previous = (await readAlias(store, 'colours', 'latest'))!.previous!;
    const r = await rollbackAlias(store, 'colours');
    expect(r).toMatchObject({ from: before, to: previous });
    expect((await readAlias(store, 'colours', 'latest'))!.version).toBe(previous);
    await rollbackAlias(store, 'colours'); // and back
    expect((await readAlias(store, 'colours', 'latest'))!.version).toBe(before);
  });

  it('extends a model with a new task on a frozen trunk: old outputs stay bit-identical', async () => {
    // Prepare
    const old = (await readAlias(store, 'colours', 'latest'))!.version;
    const oldMeta = (await readMetadata(store, 'colours', old))!;

    // Act: a new task "warm" on other images, model colours from its latest version
    const { version, report } = await run({
      dataset: 'warmth',
      hash: 'w1',
      task: 'warm',
      classes: ['cold', 'warm'],
      imageClass: (l) => (l === 'warm' ? 2 : 0),
      seed: 500,
      spec: { model: 'colours', base: 'tiny', from: `colours@${old}`, tasks: [{ name: 'warm' }], training: FAST },
    });

    // Assess: tasks, before/after on the old test split, and identical old outputs
    const meta = (await readMetadata(store, 'colours', version))!;
    expect(meta.tasks.map((t) => t.name)).toEqual(['class', 'warm']);
    expect(meta.base).toEqual(oldMeta.base);
    const c = report.transfer.continual;
    expect(c).toMatchObject({ trunk: 'frozen', added: ['warm'] });
    expect(c.tasks.class.after).toBe(c.tasks.class.before);

    const embedder = await loadEmbedder(store, await resolveBase(store, 'tiny'));
    const [oldModel, newModel] = await Promise.all([loadModel(store, versionPrefix('colours', old)), loadModel(store, versionPrefix('colours', version))]);
    try {
      const { pixels } = splitImages(COLOURS, 12, 900);
      const x = await embedder.embed(pixels, 12);
      const [oldOut] = await predictOutputs(oldModel, x, 12);
      const [newOut, warmOut] = await predictOutputs(newModel, x, 12);
      expect(Array.from(newOut)).toEqual(Array.from(oldOut));
      expect(warmOut.length).toBe(12 * 2);
    } finally {
      embedder.dispose();
      oldModel.dispose();
      newModel.dispose();
    }
  });

  it('extends a model with the trunk unfrozen, keeping old heads close by distillation (LwF)', async () => {
    // Prepare: the latest version, itself an extension (colours → + warm)
    const old = (await readAlias(store, 'colours', 'latest'))!.version;

    // Act: fineTune set with from = trunk unfrozen
    const { report } = await run(
      tonesExtending(`colours@${old}`, 't1', {
        fineTune: { layers: 1, learningRate: 0.001 },
        training: { ...FAST, epochs: 5 },
        promotion: { margin: 1 },
      }),
    );

    // Assess: each old task measured before and after on the test split that taught it
    const c = report.transfer.continual;
    expect(c).toMatchObject({ trunk: 'distilled', added: ['tone'] });
    expect(c.tasks.class.dataset).toBe('colours@h2');
    expect(c.tasks.warm.dataset).toBe('warmth@w1');
    expect(c.tasks.class.before).toBeGreaterThan(0);
    expect(Math.abs(c.tasks.class.difference)).toBeLessThanOrEqual(0.34);
    expect(report.transfer.promotion.comparisons.map((x: { on: string }) => x.on)).toEqual(
      expect.arrayContaining(['test split of colours@h2', 'test split of warmth@w1']),
    );
  });

  it('fine-tunes the top layers by name (batch norm frozen) and serves the fine-tuned model', async () => {
    // Act: unfreeze emb and c2; bn2 sits between them and stays frozen
    const { version, report } = await run({
      dataset: 'colours-ft',
      hash: 'f1',
      classes: COLOURS,
      spec: { base: 'tiny', fineTune: { layers: 2, epochs: 3, learningRate: 0.001 }, training: FAST },
    });

    // Assess
    const ft = report.transfer.fineTune;
    expect(ft.layers).toEqual(['c2', 'emb']);
    expect(ft.cut).toBe('c1');
    expect(ft.test.class).toEqual({ before: expect.any(Number), after: expect.any(Number), difference: expect.any(Number) });
    const meta = (await readMetadata(store, 'colours-ft', version))!;
    expect(meta.base).toMatchObject({ name: 'tiny', cut: { layer: 'c1', pooling: 'none' }, embeddingSize: 16 * 16 * 4 });
    const stored = await loadModel(store, versionPrefix('colours-ft', version));
    const base = await loadModel(store, 'base-models/tiny');
    try {
      // batch norm kept the base's statistics and scale; the unfrozen layers moved
      const bn = stored.getLayer('base_bn2').getWeights();
      const bnBase = base.getLayer('bn2').getWeights();
      for (let i = 0; i < bn.length; i++) expect(Array.from(await bn[i].data())).toEqual(Array.from(await bnBase[i].data()));
      const c2 = await stored.getLayer('base_c2').getWeights()[0].data();
      expect(Array.from(c2)).not.toEqual(Array.from(await base.getLayer('c2').getWeights()[0].data()));
    } finally {
      stored.dispose();
      base.dispose();
    }

    // predict loads the embedder cut at c1 and answers
    const cache = createModelCache(store);
    const { pixels, labels } = splitImages(COLOURS, 3, 33);
    const per = SHAPE[0] * SHAPE[1] * SHAPE[2];
    const instances = await Promise.all(labels.map(async (_, i) => ({ image: await png(pixels.subarray(i * per, (i + 1) * per)) })));
    const out = await cache.predict(meta, { instances, topK: 3 });
    expect(out).toHaveLength(3);
    expect(COLOURS).toContain((out[0].class as { label: string }).label);
  });

  it('fails a job that asks to fine-tune base none, or to extend a model that does not exist, with a readable reason', async () => {
    for (const [hash, spec, pattern] of [
      ['e1', { base: 'none', fineTune: { layers: 1 } }, /base "none" has none/],
      ['e2', { base: 'tiny', from: 'nothing@latest' }, /model nothing has no version "latest"/],
    ] as const) {
      const { preparedPrefix, jobId } = await writeDataset(store, { dataset: 'bad', hash, classes: COLOURS, spec });
      const result = await runTrainingJob({ jobId, preparedPrefix }, { store, statusIntervalMs: 0 });
      expect(result).toMatchObject({ ok: false, error: { code: 'INVALID_SPEC', message: expect.stringMatching(pattern) } });
    }
  });

  it('uses a trained model as a base: model:<name> pinned to its version', async () => {
    // Act
    // Search off: the base's own feature layer (the search over its layers has its own test in search-continual.test.ts).
    const { version, report } = await run({
      dataset: 'reuse',
      hash: 'r1',
      classes: COLOURS,
      spec: { base: 'model:colours', training: { ...FAST, search: 'off' } },
    });

    // Assess
    const latest = (await readAlias(store, 'colours', 'latest'))!.version;
    const meta = (await readMetadata(store, 'reuse', version))!;
    const source = await loadModel(store, versionPrefix('colours', latest));
    const features = source.getLayer(featureLayerOf(source)).outputShape as number[];
    source.dispose();
    expect(meta.base).toMatchObject({ name: `model:colours@${latest}`, embeddingSize: features[1] });
    expect(report.tasks.class.test.accuracy).toBeGreaterThan(0.5);
    const cache = createModelCache(store);
    const { pixels } = splitImages(COLOURS, 1, 77);
    const out = await cache.predict(meta, { instances: [{ image: await png(pixels) }], topK: 1 });
    expect(out[0].class).toMatchObject({ label: expect.any(String) });
  });
});
