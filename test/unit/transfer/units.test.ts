import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { createModelCache } from '../../../functions/predict/model-cache.js';
import { compareWithBaseline } from '../../../shared/ml/baseline.js';
import { decodeEmbeddings, embedCached, embeddingBaseKey, embeddingKeyFor, encodeEmbeddings } from '../../../shared/ml/embedding-cache.js';
import { resolveBase } from '../../../shared/ml/base-models.js';
import { loadEmbedder } from '../../../shared/ml/embedder.js';
import { planFineTune } from '../../../shared/ml/fine-tune.js';
import { trainModel } from '../../../shared/ml/train.js';
import { predictOutputs } from '../../../shared/ml/inference.js';
import { loadTf } from '../../../shared/tf/loader.js';
import { loadModel } from '../../../shared/ml/model-io.js';
import { buildPrototypes, leaveOneOutAccuracy, prototypeScores } from '../../../shared/ml/prototype-classifier.js';
import { publishPrototypeModel } from '../../../shared/ml/prototype-job.js';
import { decidePromotion, NoPreviousVersionError, rollbackAlias } from '../../../shared/models/promotion.js';
import { readAlias, setAlias, writeMetadata } from '../../../shared/models/registry.js';
import { readReport, readSplit } from '../../../shared/data/shards.js';
import { embedForBase } from '../../../shared/ml/embedding-cache.js';
import { png, SHAPE, splitImages, writeDataset, writeTinyBase } from './fixtures.js';

describe('prototype classifier', () => {
  it('classifies each of its 1-shot examples as its own class', () => {
    // Prepare: three examples in 4 dimensions, one per class
    const x = Float32Array.from([1, 0.2, 0, 0, 0, 1, 0.3, 0, 0.1, 0, 1, 0.5]);
    const { prototypes, examples } = buildPrototypes(x, 3, 4, [0, 1, 2], 3);
    // Act
    const scores = prototypeScores(x, 3, 4, prototypes, 3);
    // Assess
    expect(examples).toEqual([1, 1, 1]);
    for (let i = 0; i < 3; i++) {
      const row = Array.from(scores.subarray(i * 3, i * 3 + 3));
      expect(row.indexOf(Math.max(...row))).toBe(i);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
  });

  it('estimates accuracy leaving one example out, and gives none for a 1-shot class', () => {
    const x = Float32Array.from([1, 0, 0.9, 0.1, 0, 1, 0.1, 0.9]);
    expect(leaveOneOutAccuracy(x, 4, 2, [0, 0, 1, 1], 2)).toBe(1);
    expect(leaveOneOutAccuracy(x, 4, 2, [0, 0, 0, 1], 2)).toBeUndefined();
  });

  it('publishes a 1-shot model that predicts its own examples through the predict path', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tl-proto-'));
    try {
      // Prepare: 1 image per class (in the train split)
      const store = new FsObjectStore({ root: dir });
      await writeTinyBase(store);
      const classes = ['blue', 'green', 'red'];
      const { preparedPrefix } = await writeDataset(store, {
        dataset: 'few',
        hash: 'p1',
        classes,
        perSplit: { train: 3, validation: 0, test: 0 },
        spec: { base: 'none', mode: 'prototype' },
      });
      // Act
      const published = await publishPrototypeModel({ store, report: await readReport(store, preparedPrefix) });
      const cache = createModelCache(store);
      const { pixels } = splitImages(classes, 3, 0);
      const per = SHAPE[0] * SHAPE[1] * SHAPE[2];
      const out = await cache.predict(published.metadata, {
        instances: await Promise.all([0, 1, 2].map(async (i) => ({ image: await png(pixels.subarray(i * per, (i + 1) * per)) }))),
        topK: 3,
      });
      // Assess
      expect(published.metadata).toMatchObject({ kind: 'prototype', base: { name: 'none', embeddingSize: 32 * 32 * 3 } });
      expect(published.promotion.promote).toBe(true);
      expect((await readAlias(store, 'few', 'latest'))?.version).toBe(published.version);
      expect(out.map((p) => (p.class as { label: string }).label)).toEqual(classes);
      expect((await store.list(`models/few/${published.version}/`)).map((o) => o.key.split('/').pop()).sort()).toEqual(['metadata.json', 'prototypes.json']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the cut of a prototype model', () => {
  let dir: string;
  let store: FsObjectStore;
  const classes = ['blue', 'green', 'red'];
  // The tiny base's embedding layer (emb, 8-d), its pooled 6-d map before it (gap) and its first conv map pooled (c1, 4-d).
  const fewShot = { candidates: [{ layer: 'gap' }, { layer: 'c1', pooling: 'avg' }], fallback: { layer: 'c1', pooling: 'avg' } };
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tl-proto-cut-'));
    store = new FsObjectStore({ root: dir });
    await writeTinyBase(store, { fewShot });
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('is the candidate with the best leave-one-out accuracy when every class has two examples, and predict embeds there', async () => {
    const { preparedPrefix } = await writeDataset(store, {
      dataset: 'few',
      hash: 'c1',
      classes,
      // Green and red images look alike (one colour, different noise): the cuts now differ in what they can tell apart.
      imageClass: (l) => (l === 'blue' ? 0 : 1),
      perSplit: { train: 12, validation: 3, test: 3 },
      spec: { base: 'tiny', mode: 'prototype' },
    });
    const report = await readReport(store, preparedPrefix);

    const published = await publishPrototypeModel({ store, report });

    // Each candidate's accuracy, computed here from its own embeddings.
    const shards = await Promise.all((['train', 'validation', 'test'] as const).map((s) => readSplit(store, report, s)));
    const records = shards.flatMap((s) => s.records);
    const pixels = new Uint8Array(shards.reduce((a, s) => a + s.data.length, 0));
    let at = 0;
    for (const s of shards) {
      pixels.set(s.data, at);
      at += s.data.length;
    }
    const targets = records.map((r) => classes.indexOf(r.labels.class as string));
    const cuts = [undefined, { layer: 'gap', pooling: 'none' as const }, { layer: 'c1', pooling: 'avg' as const }];
    const expected = [];
    for (const cut of cuts) {
      const e = await embedForBase(store, { base: { name: 'tiny', ...(cut ? { cut } : {}) } }, { pixels, count: records.length, shape: SHAPE });
      expected.push({ cut, size: e.size, accuracy: leaveOneOutAccuracy(e.x, records.length, e.size, targets, 3)! });
    }
    const search = published.metadata.metrics.cutSearch as { by: string; chosen: string; candidates: Array<{ size: number; leaveOneOutAccuracy: number }> };
    expect(search.by).toBe('leave-one-out');
    expect(search.candidates.map((c) => c.size)).toEqual([8, 6, 4]);
    expect(search.candidates.map((c) => c.leaveOneOutAccuracy)).toEqual(expected.map((e) => e.accuracy));
    // The best, ties to the earlier candidate.
    const best = expected.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
    expect(published.metadata.base.cut).toEqual(best.cut);
    expect(published.metadata.base.embeddingSize).toBe(best.size);
    // On these images the pooled first conv map wins (0.78 against 0.39 at the embedding layer): a cut other than the default is served.
    expect(published.metadata.base.cut).toEqual({ layer: 'c1', pooling: 'avg' });

    const { pixels: shown } = splitImages(classes, 3, 0);
    const per = SHAPE[0] * SHAPE[1] * SHAPE[2];
    const out = await createModelCache(store).predict(published.metadata, {
      instances: await Promise.all([0, 1, 2].map(async (i) => ({ image: await png(shown.subarray(i * per, (i + 1) * per)) }))),
      topK: 3,
    });
    expect(out).toHaveLength(3);
  });

  it('falls back to the cut the base names when a class has a single example', async () => {
    const { preparedPrefix } = await writeDataset(store, {
      dataset: 'few',
      hash: 'c2',
      classes,
      perSplit: { train: 3, validation: 0, test: 0 },
      spec: { base: 'tiny', mode: 'prototype' },
    });
    const published = await publishPrototypeModel({ store, report: await readReport(store, preparedPrefix) });
    expect(published.metadata.base).toMatchObject({ cut: { layer: 'c1', pooling: 'avg' }, embeddingSize: 4 });
    expect(published.metadata.metrics.cutSearch).toMatchObject({ by: 'fallback', chosen: 'c1 (avg pooled)' });
  });
});

describe('promotion gate', () => {
  const c = (task: string, previous: number, candidate: number) => ({
    task,
    metric: 'accuracy',
    previous,
    candidate,
    delta: candidate - previous,
    on: 'test split of this job',
  });

  it('promotes a first version and one within the margin', () => {
    expect(decidePromotion([], 0.01).promote).toBe(true);
    expect(decidePromotion([c('a', 0.9, 0.89)], 0.01, 'v1').promote).toBe(true);
    expect(decidePromotion([c('a', 0.9, 0.95), c('b', 0.5, 0.5)], 0.01, 'v1').reason).toMatch(/promoted over v1/);
  });

  it('refuses when any task falls by more than the margin, naming it', () => {
    const d = decidePromotion([c('a', 0.9, 0.95), c('b', 0.8, 0.7)], 0.05, 'v1');
    expect(d.promote).toBe(false);
    expect(d.reason).toMatch(/task "b" accuracy fell by 10\.0 points/);
    expect(d.reason).not.toMatch(/task "a"/);
  });

  it('refuses when nothing could be compared with the version it would replace, naming lost classes', () => {
    const none = decidePromotion([], 0.01, 'v1', { notCompared: 'this job has no test records' });
    expect(none).toMatchObject({
      promote: false,
      reason: expect.stringMatching(/not promoted: it could not be compared with v1 .*this job has no test records/),
    });
    expect(decidePromotion([], 0.01, 'v1', { lostClasses: { class: ['red'] } }).reason).toMatch(/task "class" loses class "red"/);
    expect(decidePromotion([], 0.01, 'v1', { unmeasurable: true }).promote).toBe(true);
  });

  it('rolls back to the previous version and refuses when there is none', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tl-rollback-'));
    try {
      const store = new FsObjectStore({ root: dir });
      const meta = (version: string) => ({
        model: 'm',
        version,
        createdAt: '2026-01-01T00:00:00Z',
        kind: 'train' as const,
        input: { type: 'vector' as const, size: 2 },
        base: { name: 'none' },
        tasks: [{ name: 'class', type: 'classification' as const, auxiliary: false, labels: ['a', 'b'] }],
        dataset: { name: 'd', hash: 'h' },
        spec: { model: 'm' } as never,
        metrics: {},
      });
      const [v1, v2] = ['v20260101000000-aaaaaa', 'v20260102000000-bbbbbb'];
      await writeMetadata(store, { ...meta(v1), spec: (await import('../../../shared/schemas/spec.js')).TrainSpecSchema.parse({}) });
      await writeMetadata(store, { ...meta(v2), spec: (await import('../../../shared/schemas/spec.js')).TrainSpecSchema.parse({}) });
      await setAlias(store, 'm', 'latest', v1);
      await expect(rollbackAlias(store, 'm')).rejects.toBeInstanceOf(NoPreviousVersionError);
      await setAlias(store, 'm', 'latest', v2);
      expect(await rollbackAlias(store, 'm')).toEqual({ model: 'm', alias: 'latest', from: v2, to: v1 });
      expect((await readAlias(store, 'm', 'latest'))?.version).toBe(v1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('baseline comparison', () => {
  const base = (accuracy: number, count = 20) => ({ method: 'm', test: { class: { accuracy, count } }, epochsRun: 3, ms: 1 });
  it('says tie within half a point, not compared without test records, with the count and advice fitting the job', () => {
    expect(compareWithBaseline({ class: { accuracy: 0.8 } }, base(0.8)).verdict).toMatch(
      /^Transfer learning ties with the from-scratch baseline.*20 test records/,
    );
    expect(compareWithBaseline({ class: { accuracy: 0.9 } }, base(0.8)).verdict).toMatch(/^Transfer learning beats .*\+10\.0 points\), 20 test records/);
    expect(compareWithBaseline({ class: { accuracy: 0 } }, base(0, 0)).verdict).toMatch(/not compared/);
    const lost = (ctx: Parameters<typeof compareWithBaseline>[2]) => compareWithBaseline({ class: { accuracy: 0.5 } }, base(0.8), ctx).verdict;
    expect(lost({ base: 'none' })).toMatch(/base "none".*pretrained base/);
    expect(lost({ base: 'none' })).not.toMatch(/base's features/);
    expect(lost({ base: 'tiny', fineTuned: true })).toMatch(/even fine-tuned/);
  });

  it('says plainly when the from-scratch baseline wins', () => {
    const r = compareWithBaseline({ class: { accuracy: 0.6 } }, { method: 'm', test: { class: { accuracy: 0.75, count: 20 } }, epochsRun: 3, ms: 1 });
    expect(r.baselineWins).toBe(true);
    expect(r.tasks.class.difference).toBeCloseTo(-0.15, 6);
    expect(r.verdict).toMatch(/^The from-scratch baseline beats transfer learning/);
    expect(
      compareWithBaseline({ class: { accuracy: 0.9 } }, { method: 'm', test: { class: { accuracy: 0.75, count: 20 } }, epochsRun: 3, ms: 1 }).baselineWins,
    ).toBe(false);
  });
});

describe('baseline comparison of multilabel and regression tasks', () => {
  const result = (test: Parameters<typeof compareWithBaseline>[1]['test']) => ({ method: 'm', test, epochsRun: 3, ms: 1 });

  it('compares multilabel tasks by micro-F1, with macro-F1 beside it', () => {
    const r = compareWithBaseline({ tags: { microF1: 0.9, macroF1: 0.85 } }, result({ tags: { type: 'multilabel', microF1: 0.7, macroF1: 0.6, count: 12 } }));
    expect(r.tasks.tags).toMatchObject({ metric: 'microF1', better: 'transfer', figures: { macroF1: { difference: expect.closeTo(0.25, 6) } } });
    expect(r.baselineWins).toBe(false);
    expect(r.verdict).toMatch(/^Transfer learning beats .*micro-F1 0\.900 vs 0\.700 \(\+20\.0 points\), macro-F1 0\.850 vs 0\.600/);
  });

  it('compares regression tasks by R² and MAE, and says so when transfer does no better than the train mean', () => {
    const mean = { r2: -0.02, mae: 1.5 };
    const beaten = compareWithBaseline({ y: { r2: 0.8, mae: 0.3 } }, result({ y: { type: 'regression', r2: 0.5, mae: 0.7, count: 10, trainMean: mean } }));
    expect(beaten.tasks.y).toMatchObject({ metric: 'r2', better: 'transfer', trainMean: { beaten: true } });
    expect(beaten.baselineWins).toBe(false);
    expect(beaten.verdict).toMatch(/R² 0\.800 vs 0\.500.*MAE 0\.300 vs 0\.700 \(−0\.400\).*train mean: R² −0\.020|train mean: R² -0\.020/);

    // Both models as bad as the mean: a tie with the baseline, but transfer did not pay.
    const flat = compareWithBaseline({ y: { r2: -0.02, mae: 1.5 } }, result({ y: { type: 'regression', r2: -0.02, mae: 1.5, count: 10, trainMean: mean } }));
    expect(flat.baselineWins).toBe(true);
    expect(flat.verdict).toMatch(/^Transfer learning does not pay: on task "y" transfer learning does no better than predicting the train mean/);
  });
});

describe('embedding cache and fine-tune plan', () => {
  it('round-trips embeddings and names the cut in the key', () => {
    const x = Float32Array.from([1.5, -2, 3.25, 0]);
    expect(decodeEmbeddings(encodeEmbeddings(x, 2, 2))).toEqual({ count: 2, size: 2, x });
    expect(decodeEmbeddings(encodeEmbeddings(x, 2, 2).subarray(0, 10))).toBeUndefined();
    expect(embeddingBaseKey('model:pets@v20260101000000-abcdef', { layer: 'trunk_0', pooling: 'none' })).toBe('model%3Apets%40v20260101000000-abcdef~trunk_0');
    // escaping keeps distinct names apart; the content hash goes last
    expect(embeddingBaseKey('model:shapes@v1')).not.toBe(embeddingBaseKey('model_shapes_v1'));
    expect(embeddingBaseKey('tiny', undefined, 'abc123')).toBe('tiny~abc123');
  });

  it('keys the cache by the content of the base: a base replaced under the same name gets a new folder', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tl-identity-'));
    try {
      // Prepare
      const store = new FsObjectStore({ root: dir });
      await writeTinyBase(store);
      const before = await embeddingKeyFor(store, await resolveBase(store, 'tiny'));
      // Act: other weights under the same name
      const weights = (await store.list('base-models/tiny/')).find((o) => o.key.endsWith('.bin'))!;
      const bytes = await store.get(weights.key);
      bytes[0] ^= 0xff;
      await store.put(weights.key, bytes);
      const after = await embeddingKeyFor(store, await resolveBase(store, 'tiny'));
      // Assess
      expect(before).toMatch(/^tiny~[0-9a-f]{16}$/);
      expect(after).not.toBe(before);
      expect(await embeddingKeyFor(store, await resolveBase(store, 'tiny'))).toBe(after);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('hits on the same pixels, and embeds without the cache when the store refuses it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tl-cache-'));
    try {
      const store = new FsObjectStore({ root: dir });
      const pixels = splitImages(['a', 'b'], 2, 0).pixels;
      let loads = 0;
      const embedder = async () => {
        loads++;
        return loadEmbedder(store, { kind: 'none', name: 'none', inputShape: SHAPE });
      };
      const opts = { store, baseKey: 'none', pixels, count: 2, shape: SHAPE, embedder };
      const first = await embedCached(opts);
      const second = await embedCached(opts);
      expect([first.cache, second.cache, loads]).toEqual(['miss', 'hit', 1]);
      expect(second.x).toEqual(first.x);

      const errors: unknown[] = [];
      const refusing = {
        ...store,
        get: store.get.bind(store),
        list: store.list.bind(store),
        delete: store.delete.bind(store),
        presignPut: store.presignPut.bind(store),
        putIfAbsent: store.putIfAbsent.bind(store),
        put: async () => {
          throw new Error('AccessDenied');
        },
      };
      const third = await embedCached({ ...opts, store: refusing, baseKey: 'other', onCacheError: (e) => errors.push(e) });
      expect(third.cache).toBe('miss');
      expect(third.x).toEqual(first.x);
      expect(errors).toHaveLength(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('cuts below the top N weighted layers where one tensor crosses, batch norm never unfrozen', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tl-plan-'));
    try {
      const store = new FsObjectStore({ root: dir });
      await writeTinyBase(store);
      const graph = await loadModel(store, 'base-models/tiny');
      try {
        expect(planFineTune(graph, 'emb', 1)).toMatchObject({ cutLayer: 'gap', trainable: ['emb'], cutShape: [6] });
        expect(planFineTune(graph, 'emb', 2)).toMatchObject({ cutLayer: 'c1', trainable: ['c2', 'emb'], topLayers: ['c2', 'bn2', 'relu2', 'gap', 'emb'] });
        expect(() => planFineTune(graph, 'emb', 4)).toThrow(/only 3 layers/);
      } finally {
        graph.dispose();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('distillation by task kind', () => {
  it('pulls a regression head to the old outputs (MSE) and a multilabel head to per-unit probabilities', async () => {
    // Prepare: one dense output per task on 2 inputs
    const { tf } = await loadTf();
    const input = tf.input({ shape: [2], name: 'embedding' });
    const reg = tf.layers.dense({ units: 1, name: 'head_score', kernelInitializer: 'zeros' }).apply(input) as never;
    const multi = tf.layers.dense({ units: 2, activation: 'sigmoid', name: 'head_tags', kernelInitializer: 'zeros' }).apply(input) as never;
    const model = tf.model({ inputs: input, outputs: [reg, multi] });
    const heads = [
      { name: 'score', type: 'regression' as const, auxiliary: false },
      { name: 'tags', type: 'multilabel' as const, auxiliary: false, labels: ['a', 'b'] },
    ];
    const count = 16;
    const x = Float32Array.from({ length: count * 2 }, (_, i) => (i % 2 ? 1 : (i % 5) / 5));
    const soft = { score: new Float32Array(count).fill(3), tags: Float32Array.from({ length: count * 2 }, () => 0.9) };
    // Act
    await trainModel(
      model,
      { train: { x, count, targets: {}, soft } },
      { tasks: heads, epochs: 200, batchSize: 16, learningRate: 0.05, patience: 200, inferenceMode: true },
    );
    const [score, tags] = await predictOutputs(model, x, count);
    model.dispose();
    // Assess: a softmax over one unit (or over two independent ones) could not reach these
    expect(Math.abs(score[0] - 3)).toBeLessThan(0.2);
    expect(tags[0]).toBeCloseTo(0.9, 1);
    expect(tags[1]).toBeCloseTo(0.9, 1);
  });
});
