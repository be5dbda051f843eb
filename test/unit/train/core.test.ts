import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildModelCard } from '../../../shared/models/model-card.js';
import { engineOf } from '../../../shared/ml/onnx/runtime.js';
import { tempStore } from '../../helpers/temp-store.js';
import { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { readJobStatus, updateJobStatus } from '../../../shared/jobs/status.js';
import { readAlias, readMetadata } from '../../../shared/models/registry.js';
import { getJson } from '../../../shared/ports/object-store.js';
import { readSplit } from '../../../shared/data/shards.js';
import { loadModel } from '../../../shared/ml/model-io.js';
import { loadEmbedder } from '../../../shared/ml/embedder.js';
import { resolveBase } from '../../../shared/ml/base-models.js';
import { predictTasks } from '../../../shared/ml/predict.js';
import { checkpointPrefix, runTrainingJob } from '../../../functions/train/core.js';
import { VersionReportSchema } from '../../../shared/schemas/version-report.js';
import { CLASSES, recordingStore, SHAPE, servedTestAccuracy, writePreparedDataset } from './fixtures.js';

describe('runTrainingJob', () => {
  let cleanup: () => Promise<void>;
  let store: FsObjectStore;
  beforeEach(async () => {
    ({ store, cleanup } = await tempStore('tl-train-'));
  });
  afterEach(async () => cleanup());

  it('trains on base none, publishes a complete version, then moves latest', async () => {
    // Prepare
    const { preparedPrefix, jobId, report } = await writePreparedDataset(store);
    const rec = recordingStore(store);

    // Act
    const result = await runTrainingJob({ jobId, preparedPrefix }, { store: rec, statusIntervalMs: 0 });

    // Assess: result and final status
    expect(result).toMatchObject({ ok: true, model: 'colours' });
    const version = (result as { version: string }).version;
    const status = await readJobStatus(store, jobId);
    expect(status).toMatchObject({ state: 'succeeded', version, progress: 1, promoted: true });
    expect(status?.error).toBeUndefined();

    // the status went submitted → running through the phases, epochs reported with losses
    const statuses = rec.puts.filter((p) => p.key === `jobs/${jobId}/status.json`).map((p) => JSON.parse(p.body));
    const phases = [...new Set(statuses.map((s) => s.phase))];
    expect(phases).toEqual(['loading', 'embedding', 'training', 'evaluating', 'comparing', 'gating', 'publishing', 'done']);
    expect(statuses[0].state).toBe('running');
    const epochs = statuses.filter((s) => s.phase === 'training' && s.epoch > 0);
    expect(epochs.length).toBeGreaterThan(0);
    expect(epochs[0]).toMatchObject({ epoch: 1, epochs: 15 });
    expect(Object.keys(epochs[0].metrics)).toEqual(expect.arrayContaining(['loss', 'acc', 'val_loss', 'val_acc']));
    const progress = statuses.map((s) => s.progress);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);

    // the version folder is complete, metadata.json written last, and only then the alias
    const prefix = `models/colours/${version}`;
    const keys = rec.puts.map((p) => p.key);
    const versionKeys = keys.filter((k) => k.startsWith(prefix));
    expect(versionKeys.at(-1)).toBe(`${prefix}/metadata.json`);
    expect(versionKeys).toEqual(expect.arrayContaining([`${prefix}/model.json`, `${prefix}/weights.bin`, `${prefix}/report.json`]));
    expect(keys.indexOf('models/colours/aliases/latest.json')).toBeGreaterThan(keys.indexOf(`${prefix}/metadata.json`));
    expect((await readAlias(store, 'colours', 'latest'))?.version).toBe(version);

    const meta = await readMetadata(store, 'colours', version);
    expect(meta).toMatchObject({
      kind: 'train',
      input: { type: 'image', shape: SHAPE },
      base: { name: 'none', embeddingSize: 32 * 32 * 3 },
      tasks: [{ name: 'class', type: 'classification', auxiliary: false, labels: CLASSES }],
      dataset: { name: 'colours', hash: report.hash },
      jobId,
    });
    expect((meta!.metrics.class as { accuracy: number }).accuracy).toBeGreaterThanOrEqual(0.8);

    const full = await getJson<Record<string, any>>(store, `${prefix}/report.json`);
    expect(full.tasks.class.test.confusionMatrix.labels).toEqual(CLASSES);
    expect(full.tasks.class.test.perClass).toHaveLength(3);
    expect(full.training.history.length).toBe(full.training.epochsRun);
    expect(VersionReportSchema.parse(full).training.plan).toBe('heads');
    for (const stage of ['load', 'embed', 'train', 'evaluate', 'compare', 'gate', 'publish']) expect(full.timings[`${stage}Ms`]).toBeGreaterThanOrEqual(0);
    expect(full.timings.totalMs).toBeGreaterThanOrEqual(full.timings.trainMs);

    // the checkpoint is gone after success
    expect(await store.list(`${checkpointPrefix(jobId)}/`)).toEqual([]);

    // the published model predicts the test images through the same embedder
    const model = await loadModel(store, prefix);
    const test = await readSplit(store, report, 'test');
    const embedder = await loadEmbedder(store, await resolveBase(store, 'none'));
    const preds = await predictTasks(model, meta!.tasks, await embedder.embed(test.data as Uint8Array, test.records.length), test.records.length, { topK: 3 });
    const right = preds.filter((p, i) => (p.class as { label: string }).label === test.records[i].labels.class).length;
    expect(right / preds.length).toBeGreaterThanOrEqual(0.8);
    model.dispose();
  });

  it('does nothing for a job that already succeeded or was cancelled', async () => {
    const { preparedPrefix, jobId } = await writePreparedDataset(store, { spec: { base: 'none', training: { epochs: 1 } } });
    const first = await runTrainingJob({ jobId, preparedPrefix }, { store });
    const again = await runTrainingJob({ jobId, preparedPrefix }, { store });
    // The same answer, without stage timings: no stage ran the second time.
    const { timings, ...answer } = first;
    expect(timings?.trainMs).toBeGreaterThanOrEqual(0);
    expect(again).toEqual(answer);
    expect(again).not.toHaveProperty('timings');
    expect((await store.list('models/colours/')).filter((o) => o.key.endsWith('metadata.json'))).toHaveLength(1);

    const other = await writePreparedDataset(store, { hash: 'beef01', dataset: 'other' });
    await updateJobStatus(store, other.jobId, { state: 'cancelled' });
    expect(await runTrainingJob(other, { store })).toMatchObject({ ok: false, error: { code: 'JOB_CANCELLED' } });
    expect(await store.list('models/other/')).toEqual([]);
  });

  it('leaves records without a label out of training', async () => {
    const { preparedPrefix, jobId } = await writePreparedDataset(store, { unlabelled: [0, 1, 2] });
    const result = await runTrainingJob({ jobId, preparedPrefix }, { store });
    const full = await getJson<Record<string, any>>(store, `models/colours/${(result as { version: string }).version}/report.json`);
    expect(full.splits).toEqual({ train: 15, validation: 6, test: 6 });
    expect(full.tasks.class.labelled.train).toBe(15);
  });

  it('fails with a readable error on a missing shard and leaves the published latest untouched', async () => {
    // Prepare: a first successful version, then a new dataset whose shard vanished
    const first = await writePreparedDataset(store, { spec: { model: 'pets', base: 'none', training: { epochs: 2 } } });
    const ok = await runTrainingJob(first, { store });
    const before = await readAlias(store, 'pets', 'latest');
    const second = await writePreparedDataset(store, { hash: 'def456', spec: { model: 'pets', base: 'none', training: { epochs: 2 } } });
    await store.delete(second.report.shards[1].key);

    // Act
    const result = await runTrainingJob(second, { store });

    // Assess
    expect(ok.ok).toBe(true);
    expect(result).toMatchObject({ ok: false, error: { code: 'MISSING_DATA' } });
    const status = await readJobStatus(store, second.jobId);
    expect(status?.state).toBe('failed');
    expect(status?.error?.message).toContain(second.report.shards[1].key);
    expect(status?.error?.message).not.toMatch(/\n\s+at /);
    expect(await readAlias(store, 'pets', 'latest')).toEqual(before);
    expect((await store.list('models/pets/')).filter((o) => o.key.endsWith('metadata.json'))).toHaveLength(1);
  });

  it('fails readably for an unknown base and a single class', async () => {
    const cases = [
      { opts: { hash: 'a1', spec: { base: 'resnet_9000' } }, code: 'UNKNOWN_BASE_MODEL', message: /unknown base model "resnet_9000"/ },
      { opts: { hash: 'a2', classes: ['only'], spec: { base: 'none' } }, code: 'INVALID_DATASET', message: /at least 2 classes/ },
    ];
    for (const c of cases) {
      const prepared = await writePreparedDataset(store, { ...c.opts, dataset: `d${c.opts.hash}` });
      const result = await runTrainingJob(prepared, { store });
      expect(result).toMatchObject({ ok: false, error: { code: c.code } });
      const status = await readJobStatus(store, prepared.jobId);
      expect(status?.state).toBe('failed');
      expect(status?.error?.message).toMatch(c.message);
    }
    expect(await store.list('models/')).toEqual([]);
  });

  it('resumes from the last epoch checkpoint after an interrupted attempt', async () => {
    // Prepare: the first attempt crashes while saving the checkpoint after epoch 4
    const prepared = await writePreparedDataset(store, { spec: { base: 'none', training: { epochs: 6, patience: 6, batchSize: 8 } } });
    let saves = 0;
    const crashing = recordingStore(store, (key) => key.endsWith('/checkpoint/state.json') && ++saves === 4);
    const firstAttempt = await runTrainingJob(prepared, { store: crashing });
    const checkpoint = await getJson<{ state: { nextEpoch: number } }>(store, `${checkpointPrefix(prepared.jobId)}/state.json`);

    // Act: the retry
    const retry = await runTrainingJob(prepared, { store });

    // Assess
    expect(firstAttempt.ok).toBe(false);
    expect(checkpoint.state.nextEpoch).toBe(3);
    expect(retry.ok).toBe(true);
    const full = await getJson<Record<string, any>>(store, `models/colours/${(retry as { version: string }).version}/report.json`);
    expect(full.training.resumedFromEpoch).toBe(3);
    expect(full.training.history).toHaveLength(6);
    expect(await store.list(`${checkpointPrefix(prepared.jobId)}/`)).toEqual([]);
  });

  it('trains on vector inputs with base none', async () => {
    const prepared = await writePreparedDataset(store, {
      vectorSize: 6,
      spec: { input: { type: 'vector' }, base: 'none', training: { epochs: 20, learningRate: 0.01 } },
    });
    const result = await runTrainingJob(prepared, { store });
    expect(result.ok).toBe(true);
    const meta = await readMetadata(store, 'colours', (result as { version: string }).version);
    expect(meta).toMatchObject({ input: { type: 'vector', size: 6 }, base: { name: 'none', embeddingSize: 6 } });
    expect((meta!.metrics.class as { accuracy: number }).accuracy).toBeGreaterThanOrEqual(0.8);
  });

  it('refuses vector inputs with a pretrained base', async () => {
    const prepared = await writePreparedDataset(store, { vectorSize: 6, spec: { input: { type: 'vector' }, base: 'mobilenet_v2' } });
    const result = await runTrainingJob(prepared, { store });
    expect(result).toMatchObject({ ok: false, error: { code: 'INVALID_DATASET', message: expect.stringMatching(/vector inputs need base "none"/) } });
  });

  it('trains on mobilenet_v2 embeddings (images resized to 224×224)', async () => {
    const prepared = await writePreparedDataset(store, {
      perSplit: { train: 6, validation: 3, test: 3 },
      // The embedding layer itself (the search, which may choose another cut, has its own test below).
      spec: { base: 'mobilenet_v2', sharing: { method: 'hard', trunk: [] }, training: { epochs: 3, batchSize: 6, search: 'off' } },
    });
    const result = await runTrainingJob(prepared, { store });
    expect(result.ok).toBe(true);
    const meta = await readMetadata(store, 'colours', (result as { version: string }).version);
    // The engine this process runs the base on (onnx when onnxruntime-node loads) is recorded.
    expect(meta?.base).toEqual({ name: 'mobilenet_v2', embeddingSize: 1280, engine: await engineOf('mobilenet_v2') });
    expect(meta?.input).toEqual({ type: 'image', shape: SHAPE });
    // Its model card reads the job's report: records per split and per-class test metrics.
    const card = await buildModelCard(store, meta!);
    expect(card).toMatch(/Records per split: train \d+, validation \d+, test \d+\./);
    expect(card).toMatch(/Test accuracy [\d.]+%, macro F1/);
    expect(card).toContain('| class | precision | recall | F1 | test records |');
  });

  it('searches the representation on mobilenet_v2 and serves the winner, refitted on train + validation, with the leaderboard everywhere', async () => {
    // Two train records mislabelled: no linear model is right on every held-out record, so the hidden family is tried too.
    const prepared = await writePreparedDataset(store, {
      perSplit: { train: 12, validation: 6, test: 6 },
      mislabelled: [1, 5],
      spec: { base: 'mobilenet_v2' },
    });
    const result = await runTrainingJob(prepared, { store, statusIntervalMs: 0 });
    expect(result.ok).toBe(true);
    const version = (result as { version: string }).version;
    const report = VersionReportSchema.parse(await getJson(store, `models/colours/${version}/report.json`));
    const search = report.search!;
    // Every candidate from one forward pass, plus the pixels; exactly one chosen, the one named.
    expect(search.leaderboard.filter((e) => e.family === 'linear').map((e) => e.candidate)).toEqual([
      'flatten_1',
      'block_13_expand_relu (avg)',
      'block_16_project (avg)',
      'concat of flatten_1, block_13_expand_relu (avg), block_16_project (avg)',
      'pixels 32×32×3',
    ]);
    expect(search.leaderboard.filter((e) => e.chosen).map((e) => e.candidate)).toEqual([search.chosen]);
    expect(search.leaderboard.filter((e) => e.chosen)).toHaveLength(1);
    expect(search.records).toBe(18);
    for (const e of search.leaderboard) expect(e.cvMean).toBeGreaterThanOrEqual(0);
    // The winner has the best score, and no better-scored candidate was passed over.
    const linears = search.leaderboard.filter((e) => e.family === 'linear');
    const best = Math.max(...linears.map((e) => e.cvMean!));
    expect(linears.find((e) => e.candidate === search.chosen)!.cvMean).toBe(best);
    expect(report.timings.searchMs).toBeGreaterThan(0);
    // Single task: the spec's hidden-layer head was cross-validated on the winning representation too.
    const hidden = search.leaderboard.find((e) => e.family === 'hidden')!;
    expect(hidden.candidate).toBe(search.chosen);
    const linear = search.leaderboard.find((e) => e.family === 'linear' && e.candidate === search.chosen)!;
    if (hidden.chosen) {
      // It won: the spec's head refitted on train + validation for the folds' epochs, no early stopping.
      expect(hidden.cvMean!).toBeGreaterThan(linear.cvMean!);
      expect(report.training.sharing).toEqual({ method: 'hard', trunk: [128] });
      expect(report.training.epochsRun).toBe(hidden.epochs);
    } else {
      // The linear family refitted on train + validation, no epochs.
      expect(linear.chosen).toBe(true);
      expect(report.training.sharing).toEqual({ method: 'hard', trunk: [] });
      expect(report.training.epochsRun).toBe(0);
    }
    // The same leaderboard in the metadata (GET /models/{m}) and the job status (tl status).
    const meta = (await readMetadata(store, 'colours', version))!;
    expect(meta.metrics.search).toEqual(search);
    expect((await readJobStatus(store, prepared.jobId))?.search).toEqual(search);
    // The published model reads the chosen representation.
    const chosen = search.chosen;
    if (chosen.startsWith('pixels')) expect(meta.base).toMatchObject({ name: 'none', embeddingSize: 3072 });
    else if (chosen === 'flatten_1') expect(meta.base.cut).toBeUndefined();
    else if (chosen.startsWith('concat'))
      expect(meta.base.cut).toEqual({
        layer: 'flatten_1',
        pooling: 'none',
        concat: [
          { layer: 'block_13_expand_relu', pooling: 'avg' },
          { layer: 'block_16_project', pooling: 'avg' },
        ],
      });
    else expect(meta.base.cut).toEqual({ layer: chosen.replace(' (avg)', ''), pooling: 'avg' });
    // Served as predict serves it (its embedder, its heads), the test split scores what the report says.
    const served = await servedTestAccuracy(store, 'colours', version, prepared.report, ['class']);
    for (const [task, accuracy] of Object.entries(served)) expect(accuracy).toBeCloseTo((report.tasks[task].test as { accuracy: number }).accuracy, 6);
  });

  it('does not cross-validate the spec’s hidden-layer model when a linear model is right on every held-out record', async () => {
    // Colours without label noise: some cut separates them perfectly in every fold.
    const prepared = await writePreparedDataset(store, { hash: 'clean', perSplit: { train: 12, validation: 6, test: 6 }, spec: { base: 'mobilenet_v2' } });
    const result = await runTrainingJob(prepared, { store });
    expect(result.ok).toBe(true);
    const report = VersionReportSchema.parse(await getJson(store, `models/colours/${(result as { version: string }).version}/report.json`));
    const search = report.search!;
    const winner = search.leaderboard.find((e) => e.family === 'linear' && e.chosen)!;
    expect(winner.cvMean).toBe(1);
    const hidden = search.leaderboard.find((e) => e.family === 'hidden')!;
    expect(hidden).toMatchObject({
      candidate: search.chosen,
      chosen: false,
      note: expect.stringMatching(/not tried: the linear model classified every held-out record correctly/),
    });
    expect(hidden.folds).toBeUndefined();
    expect(report.training).toMatchObject({ sharing: { method: 'hard', trunk: [] }, epochsRun: 0 });
  });

  it('stops cross-validating the spec’s hidden-layer model once it can no longer beat the linear one', async () => {
    // A trainer that leaves the network as it was built: chance level, far below the linear model.
    const prepared = await writePreparedDataset(store, {
      hash: 'untrained',
      perSplit: { train: 12, validation: 6, test: 6 },
      mislabelled: [1, 5],
      spec: { base: 'mobilenet_v2', training: { searchBudgetSeconds: 600 } },
    });
    let trainings = 0;
    const result = await runTrainingJob(prepared, {
      store,
      trainer: async () => {
        trainings++;
        return { history: [], bestEpoch: 0, epochsRun: 0, stoppedEarly: false, taskWeights: {} };
      },
    });
    expect(result.ok).toBe(true);
    const report = VersionReportSchema.parse(await getJson(store, `models/colours/${(result as { version: string }).version}/report.json`));
    const search = report.search!;
    const winner = search.leaderboard.find((e) => e.family === 'linear' && e.chosen)!;
    expect(winner.cvMean).toBeLessThan(1);
    const hidden = search.leaderboard.find((e) => e.family === 'hidden')!;
    expect(hidden.chosen).toBe(false);
    expect(hidden.folds).toBeLessThan(3);
    expect(hidden.note).toMatch(new RegExp(`^stopped after ${hidden.folds} of 3 folds`));
    // What was scored could not have won: every fold left at 100 % still ends at or below the winner.
    expect(((hidden.cvMean ?? 0) * hidden.folds! + (3 - hidden.folds!)) / 3).toBeLessThanOrEqual(winner.cvMean! + 1e-4);
    expect(trainings).toBe(hidden.folds);
  });

  it('searches a multi-task spec: the spec’s model against a linear model per task, auxiliary and masked labels included', async () => {
    // Prepare: "class" and "warm" (main; warm unlabelled on some train records) and an auxiliary task.
    const moreTasks = {
      warm: (cls: string, split: string, i: number) => (split === 'train' && i % 4 === 1 ? null : cls === 'red' ? 'warm' : 'cool'),
      parity: (_cls: string, _split: string, i: number) => (i % 2 ? 'odd' : 'even'),
    };
    const tasks = [{ name: 'class' }, { name: 'warm' }, { name: 'parity', auxiliary: true }];
    const budget = { searchBudgetSeconds: 600 };
    const withTrunk = await writePreparedDataset(store, {
      hash: 'm1',
      perSplit: { train: 12, validation: 6, test: 6 },
      mislabelled: [1, 5],
      moreTasks,
      spec: { base: 'mobilenet_v2', tasks, training: budget },
    });
    const linearOnly = await writePreparedDataset(store, {
      hash: 'm2',
      perSplit: { train: 12, validation: 6, test: 6 },
      moreTasks,
      spec: { base: 'mobilenet_v2', tasks, sharing: { method: 'hard', trunk: [] }, training: budget },
    });

    // Act
    const a = await runTrainingJob(withTrunk, { store });
    const b = await runTrainingJob(linearOnly, { store });

    // Assess: the spec's model was cross-validated on the winner, per main task and by the normalised criterion.
    const reportOf = async (r: typeof a) => VersionReportSchema.parse(await getJson(store, `models/colours/${(r as { version: string }).version}/report.json`));
    const [ra, rb] = [await reportOf(a), await reportOf(b)];
    const search = ra.search!;
    expect(search.criterion).toMatch(/mean over main tasks/);
    const linears = search.leaderboard.filter((e) => e.family === 'linear');
    for (const e of linears) expect(Object.keys(e.tasks!)).toEqual(['class', 'warm']);
    const hidden = search.leaderboard.find((e) => e.family === 'hidden')!;
    expect(hidden.candidate).toBe(search.chosen);
    // All three folds, unless it was stopped once it could no longer beat the linear winner (dropout is not seeded).
    if (hidden.note) expect(hidden.note).toMatch(new RegExp(`^stopped after ${hidden.folds} of 3 folds`));
    else expect(hidden.folds).toBe(3);
    const best = (t: string) => Math.max(...linears.map((e) => e.tasks![t].cvMean));
    // Its score is the same criterion as the linear rows': the mean of each task's accuracy over that task's best linear one.
    expect(hidden.cvMean!).toBeCloseTo((hidden.tasks!.class.cvMean / best('class') + hidden.tasks!.warm.cvMean / best('warm')) / 2, 3);
    const winner = linears.find((e) => e.candidate === search.chosen)!;
    expect(hidden.chosen).toBe(hidden.cvMean! > winner.cvMean!);
    expect(winner.chosen).toBe(!hidden.chosen);
    expect(ra.training.sharing).toEqual(hidden.chosen ? { method: 'hard', trunk: [128] } : { method: 'hard', trunk: [] });

    // With no hidden layer in the spec, the linear models are refitted per task, the auxiliary one too, and served.
    const linearSearch = rb.search!;
    expect(linearSearch.leaderboard.find((e) => e.family === 'hidden')?.note).toBe('not tried: the spec’s model has no hidden layer');
    expect(linearSearch.model).toMatch(/linear model of each task refitted on train \+ validation/);
    expect(rb.training.epochsRun).toBe(0);
    // Its heads share only the frozen base: no "does sharing help?" comparison is trained for it.
    expect(rb.sharingComparison).toBeUndefined();
    expect(ra.sharingComparison === undefined).toBe(!hidden.chosen);
    const chosenRow = linearSearch.leaderboard.find((e) => e.chosen)!;
    expect(Object.values(chosenRow.tasks!).every((t) => [1, 0.1, 0.01, 0.001].includes(t.l2!))).toBe(true);
    const version = (b as { version: string }).version;
    const meta = (await readMetadata(store, 'colours', version))!;
    expect(meta.tasks.map((t) => t.name)).toEqual(['class', 'warm', 'parity']);
    const served = await servedTestAccuracy(store, 'colours', version, withTrunk.report, ['class', 'warm']);
    for (const [task, accuracy] of Object.entries(served)) expect(accuracy).toBeCloseTo((rb.tasks[task].test as { accuracy: number }).accuracy, 6);
  });

  it('skips the search when the spec pins a cut or turns it off, and says why', async () => {
    const cut = { layer: 'block_16_project', pooling: 'avg' as const };
    const pinned = await writePreparedDataset(store, {
      hash: 'p1',
      perSplit: { train: 6, validation: 3, test: 3 },
      spec: { base: 'mobilenet_v2', cut, training: { epochs: 2 } },
    });
    const a = await runTrainingJob(pinned, { store });
    const off = await writePreparedDataset(store, {
      hash: 'p2',
      perSplit: { train: 6, validation: 3, test: 3 },
      spec: { base: 'mobilenet_v2', training: { epochs: 2, search: 'off' } },
    });
    const b = await runTrainingJob(off, { store });
    const reportOf = async (r: typeof a) => VersionReportSchema.parse(await getJson(store, `models/colours/${(r as { version: string }).version}/report.json`));
    const [ra, rb] = [await reportOf(a), await reportOf(b)];
    expect(ra.search).toBeUndefined();
    expect(ra.searchSkipped).toBe('the spec pins its cut (block_16_project (avg))');
    expect(ra.transfer.cut).toEqual(cut);
    expect((await readMetadata(store, 'colours', (a as { version: string }).version))?.base).toMatchObject({ cut, embeddingSize: 320 });
    expect(rb.searchSkipped).toBe('training.search is "off"');
    expect(rb.training.sharing).toEqual({ method: 'hard', trunk: [128] });
  });
});
