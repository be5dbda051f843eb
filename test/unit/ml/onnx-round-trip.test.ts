/**
 * Issue 9's export acceptance: a model trained by the real job, exported as one ONNX
 * file and run with onnxruntime-node, gives the predictions of the predict endpoint,
 * for every kind of model: classification, multilabel, regression, multi-task (hard
 * and soft sharing) and vector input. The jobs run on the tiny convolutional base of
 * the transfer tests (or on pixels, base "none"), so each trains in seconds.
 */
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler } from '../../../functions/predict/handler.js';
import { createModelCache } from '../../../functions/predict/model-cache.js';
import { runTrainingJob } from '../../../functions/train/core.js';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { decodeImage } from '../../../shared/data/images.js';
import { encodeShard } from '../../../shared/data/shards.js';
import { jobStatusKey } from '../../../shared/jobs/status.js';
import { exportModelToOnnx } from '../../../shared/ml/onnx/model-export.js';
import { resolveModel, setAlias, versionPrefix, writeMetadata } from '../../../shared/models/registry.js';
import { putJson, type ObjectStore } from '../../../shared/ports/object-store.js';
import type { ModelMetadata } from '../../../shared/schemas/model.js';
import type { DatasetReport, SplitName } from '../../../shared/schemas/report.js';
import { TrainSpecSchema, type TrainSpecInput } from '../../../shared/schemas/spec.js';
import { apiEvent } from '../../helpers/api.js';
import { tempStore } from '../../helpers/temp-store.js';
import { COLOURS, FAST, png, runJob, SHAPE, splitImages, writeTinyBase, type DatasetOptions } from '../transfer/fixtures.js';

type TaskOutput = { label?: string; labels?: string[]; scores?: Array<{ label: string; score: number }>; value?: number[] };
type Prediction = Record<string, TaskOutput>;

const predictEvent = (model: string, body: unknown) => ({ ...apiEvent('POST', '/models/{model}/predict', { model }, body), path: `/models/${model}/predict` });

const PER_SPLIT = { train: 24, validation: 9, test: 9 };
const TOTAL = PER_SPLIT.train + PER_SPLIT.validation + PER_SPLIT.test;
const TAGS = [['warm'], ['cool'], ['warm', 'cool']];

/** Runs the exported file with onnxruntime-node: one Float32Array per output name. */
async function runOnnx(bytes: Uint8Array, input: string, data: Float32Array, dims: number[]) {
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  try {
    expect(session.inputNames).toEqual([input]);
    const r = await session.run({ [input]: new ort.Tensor('float32', data, dims) });
    return { names: [...session.outputNames], outputs: Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.data as Float32Array])) };
  } finally {
    await session.release();
  }
}

/**
 * Every main task of the endpoint's answer against the ONNX output of the same name:
 * each label's probability within 1e-4 (classification, multilabel), values in real
 * units within 1e-4 of their size (regression), and the same predicted label(s).
 */
function expectSamePredictions(meta: ModelMetadata, predictions: Prediction[], outputs: Record<string, Float32Array>) {
  const main = meta.tasks.filter((t) => !t.auxiliary);
  predictions.forEach((p, row) => {
    expect(Object.keys(p).sort()).toEqual(main.map((t) => t.name).sort());
    for (const task of main) {
      const units = task.type === 'regression' ? (task.size ?? 1) : task.labels!.length;
      const onnx = outputs[task.name].subarray(row * units, (row + 1) * units);
      expect(outputs[task.name].length).toBe(predictions.length * units);
      const answer = p[task.name];
      if (task.type === 'regression') {
        answer.value!.forEach((v, j) => expect(Math.abs(onnx[j] - v)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(v))));
        continue;
      }
      expect(answer.scores).toHaveLength(units);
      for (const s of answer.scores!) expect(Math.abs(onnx[task.labels!.indexOf(s.label)] - s.score)).toBeLessThanOrEqual(1e-4);
      if (task.type === 'classification') {
        expect(task.labels![onnx.indexOf(Math.max(...onnx))]).toBe(answer.label);
        expect(onnx.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      } else {
        const thresholds = task.thresholds ?? task.labels!.map(() => 0.5);
        expect(task.labels!.filter((_, j) => onnx[j] >= thresholds[j])).toEqual(answer.labels);
      }
    }
  });
}

/** The tasks the file declares in `metadata_props` (`tl.tasks`). */
function declaredTasks(bytes: Uint8Array): unknown {
  const model = onnxProto.onnx.ModelProto.decode(bytes);
  return JSON.parse(model.metadataProps.find((p) => p.key === 'tl.tasks')!.value!);
}

/**
 * A prepared vector dataset of 6 features: class a/b by the sign of feature 0, tags x
 * (feature 1 > 0) and y (feature 3 > 0.5), value 3·f2 + 10.
 */
async function writeVectorDataset(store: ObjectStore, spec: TrainSpecInput): Promise<{ preparedPrefix: string; jobId: string; sample: number[][] }> {
  const size = 6;
  const prefix = 'prepared/table/v1';
  const shards: DatasetReport['shards'] = [];
  const classes: Record<string, number> = { a: 0, b: 0 };
  const tagCounts: Record<string, number> = { x: 0, y: 0 };
  const sample: number[][] = [];
  let seed = 0;
  for (const split of ['train', 'validation', 'test'] as SplitName[]) {
    const n = { train: 40, validation: 12, test: 12 }[split];
    const data = new Float32Array(n * size);
    const records = Array.from({ length: n }, (_, i) => {
      const f = Array.from({ length: size }, (_, j) => Math.sin(seed * 1.3 + j * 2.1 + j * j));
      seed++;
      data.set(f, i * size);
      if (split === 'test' && sample.length < 5) sample.push(f);
      const kind = f[0] < 0 ? 'a' : 'b';
      const tags = [...(f[1] > 0 ? ['x'] : []), ...(f[3] > 0.5 ? ['y'] : [])];
      classes[kind]++;
      tags.forEach((t) => tagCounts[t]++);
      return { key: `datasets/table/${split}-${i}`, labels: { kind, tags, value: 3 * f[2] + 10 } };
    });
    const key = `${prefix}/${split}-0.shard`;
    await store.put(key, encodeShard({ split, dtype: 'float32', shape: [size], records, data }));
    shards.push({ key, split, count: n });
  }
  const total = 64;
  const report: DatasetReport = {
    dataset: 'table',
    hash: 'v1',
    layout: 'manifest',
    spec: TrainSpecSchema.parse(spec),
    inputShape: [size],
    records: { total, used: total, skipped: 0 },
    splits: { train: 40, validation: 12, test: 12 },
    tasks: {
      kind: { type: 'classification', labelled: total, classes },
      tags: { type: 'multilabel', labelled: total, classes: tagCounts },
      value: { type: 'regression', labelled: total, size: 1 },
    },
    skipped: [],
    shards,
    createdAt: new Date().toISOString(),
  };
  await putJson(store, `${prefix}/report.json`, report);
  const jobId = 'train-table-v1';
  const t = new Date().toISOString();
  await putJson(store, jobStatusKey(jobId), {
    jobId,
    model: 'table',
    dataset: 'table',
    datasetHash: 'v1',
    state: 'submitted',
    progress: 0,
    metrics: {},
    createdAt: t,
    updatedAt: t,
  });
  return { preparedPrefix: prefix, jobId, sample };
}

describe('an exported model run with onnxruntime-node gives the predictions of the endpoint', () => {
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  let handler: ReturnType<typeof createHandler>;
  // Test-split images of the colour datasets (seeds past the ones the job trained on): 6, two of each class.
  const { pixels } = splitImages(COLOURS, 6, 5000);
  const per = SHAPE[0] * SHAPE[1] * SHAPE[2];
  let images: string[];

  beforeAll(async () => {
    ({ store, cleanup } = await tempStore('tl-onnx-round-trip-'));
    await writeTinyBase(store);
    handler = createHandler({ store, models: createModelCache(store) });
    images = await Promise.all(Array.from({ length: 6 }, (_, i) => png(pixels.subarray(i * per, (i + 1) * per))));
  });
  afterAll(async () => cleanup());

  /** Trains `o` with the job, exports the published version, and checks it against predict on the six images. */
  async function roundTrip(o: DatasetOptions) {
    // Prepare
    await runJob(store, o);
    const meta = await resolveModel(store, o.spec?.model ?? o.dataset);
    // The pixels as the endpoint sees them: decoded from the PNGs at the model's input size.
    if (meta.input.type !== 'image') throw new Error('an image model was expected');
    const shape = meta.input.shape;
    const size = shape[0] * shape[1] * shape[2];
    const x = new Float32Array(images.length * size);
    for (const [i, b64] of images.entries()) x.set(await decodeImage(Buffer.from(b64, 'base64'), shape), i * size);

    // Act
    const bytes = await exportModelToOnnx(store, meta);
    const { names, outputs } = await runOnnx(bytes, 'image', x, [images.length, ...shape]);
    const res = await handler(predictEvent(meta.model, { instances: images.map((image) => ({ image })), topK: 100 }));

    // Assess
    expect(res.statusCode).toBe(200);
    expect(names).toEqual(meta.tasks.filter((t) => !t.auxiliary).map((t) => t.name));
    expectSamePredictions(meta, (JSON.parse(res.body) as { predictions: Prediction[] }).predictions, outputs);
    expect(declaredTasks(bytes)).toEqual(
      meta.tasks.filter((t) => !t.auxiliary).map((t) => ({ name: t.name, type: t.type, ...(t.labels ? { labels: t.labels } : {}) })),
    );
    return meta;
  }

  it('classification on a convolutional base', async () => {
    await roundTrip({ dataset: 'colours', hash: 'c1', classes: COLOURS, perSplit: PER_SPLIT, spec: { base: 'tiny', training: FAST } });
  }, 120_000);

  it('images larger than the base takes are resized inside the graph as predict resizes them', async () => {
    // Prepare: the classification model above, served as taking 20×20 images (predict
    // decodes at 20×20, and the embedder resizes to the base's 16×16), as a model
    // extended onto another base keeps its own input size.
    const from = await resolveModel(store, 'colours');
    for (const o of await store.list(`${versionPrefix('colours', from.version)}/`)) {
      await store.put(o.key.replace('models/colours/', 'models/colours-20/'), await store.get(o.key));
    }
    const meta: ModelMetadata = { ...from, model: 'colours-20', input: { type: 'image', shape: [20, 20, 3] } };
    await writeMetadata(store, meta);
    await setAlias(store, 'colours-20', 'latest', meta.version);
    const x = new Float32Array(images.length * 20 * 20 * 3);
    for (const [i, b64] of images.entries()) x.set(await decodeImage(Buffer.from(b64, 'base64'), [20, 20, 3]), i * 20 * 20 * 3);

    // Act
    const bytes = await exportModelToOnnx(store, meta);
    const { outputs } = await runOnnx(bytes, 'image', x, [images.length, 20, 20, 3]);
    const res = await handler(predictEvent('colours-20', { instances: images.map((image) => ({ image })), topK: 100 }));

    // Assess
    expect(res.statusCode).toBe(200);
    expectSamePredictions(meta, (JSON.parse(res.body) as { predictions: Prediction[] }).predictions, outputs);
  }, 60_000);

  it('multilabel on a convolutional base', async () => {
    await roundTrip({
      dataset: 'tags',
      hash: 't1',
      classes: COLOURS,
      perSplit: PER_SPLIT,
      labelsOf: (c) => ({ tags: TAGS[c] }),
      tasks: { tags: { type: 'multilabel', labelled: TOTAL, classes: { warm: (TOTAL * 2) / 3, cool: (TOTAL * 2) / 3 } } },
      spec: { base: 'tiny', tasks: [{ name: 'tags', type: 'multilabel' }], training: FAST },
    });
  }, 120_000);

  it('regression in real units, on pixels (base "none")', async () => {
    const meta = await roundTrip({
      dataset: 'brightness',
      hash: 'r1',
      classes: COLOURS,
      perSplit: PER_SPLIT,
      labelsOf: (c) => ({ y: [40 * c + 100, -2 * c] }),
      tasks: { y: { type: 'regression', labelled: TOTAL, size: 2 } },
      spec: { base: 'none', tasks: [{ name: 'y', type: 'regression' }], training: FAST },
    });
    // The standardisation is undone inside the graph: outputs are not near 0 ± 1.
    expect(meta.tasks[0].mean![0]).toBeGreaterThan(50);
  }, 120_000);

  const multiTask = (dataset: string, sharing: TrainSpecInput['sharing']): DatasetOptions => ({
    dataset,
    hash: 'm1',
    classes: COLOURS,
    perSplit: PER_SPLIT,
    labelsOf: (c) => ({ colour: COLOURS[c], tags: TAGS[c], y: 2 * c + 1, hint: c === 0 ? 'blue' : 'other' }),
    tasks: {
      colour: { type: 'classification', labelled: TOTAL, classes: Object.fromEntries(COLOURS.map((c) => [c, TOTAL / 3])) },
      tags: { type: 'multilabel', labelled: TOTAL, classes: { warm: (TOTAL * 2) / 3, cool: (TOTAL * 2) / 3 } },
      y: { type: 'regression', labelled: TOTAL, size: 1 },
      hint: { type: 'classification', labelled: TOTAL, classes: { blue: TOTAL / 3, other: (TOTAL * 2) / 3 } },
    },
    spec: {
      base: 'tiny',
      tasks: [{ name: 'colour' }, { name: 'tags', type: 'multilabel' }, { name: 'y', type: 'regression' }, { name: 'hint', auxiliary: true }],
      sharing,
      training: FAST,
    },
  });

  it('multi-task with hard sharing: classification, multilabel and regression outputs, the auxiliary task left out', async () => {
    await roundTrip(multiTask('mtl-hard', { method: 'hard', trunk: [16] }));
  }, 120_000);

  it('multi-task with soft sharing (one tower per task)', async () => {
    await roundTrip(multiTask('mtl-soft', { method: 'soft', tower: [16], l2: 0.01 }));
  }, 120_000);

  it('a vector model takes `features` and gives every task of the endpoint', async () => {
    // Prepare
    const spec: TrainSpecInput = {
      input: { type: 'vector' },
      base: 'none',
      tasks: [{ name: 'kind' }, { name: 'tags', type: 'multilabel' }, { name: 'value', type: 'regression' }],
      training: FAST,
    };
    const { preparedPrefix, jobId, sample } = await writeVectorDataset(store, spec);
    const result = await runTrainingJob({ jobId, preparedPrefix }, { store, statusIntervalMs: 0 });
    expect(result.ok).toBe(true);
    const meta = await resolveModel(store, 'table');

    // Act
    const bytes = await exportModelToOnnx(store, meta);
    const { names, outputs } = await runOnnx(bytes, 'features', Float32Array.from(sample.flat()), [sample.length, 6]);
    const res = await handler(predictEvent('table', { instances: sample.map((features) => ({ features })), topK: 100 }));

    // Assess
    expect(res.statusCode).toBe(200);
    expect(names).toEqual(['kind', 'tags', 'value']);
    expectSamePredictions(meta, (JSON.parse(res.body) as { predictions: Prediction[] }).predictions, outputs);
    expect(meta.tasks.find((t) => t.name === 'value')!.mean![0]).toBeGreaterThan(5);
  }, 120_000);
});
