/** Prepared datasets and a tiny convolutional base for the transfer tests. */
import sharp from 'sharp';
import { encodeShard } from '../../../shared/data/shards.js';
import { jobStatusKey, readJobStatus } from '../../../shared/jobs/status.js';
import { runTrainingJob } from '../../../functions/train/core.js';
import { versionPrefix } from '../../../shared/models/registry.js';
import { getJson } from '../../../shared/ports/object-store.js';
import { expect } from 'vitest';
import { baseModelPrefix, descriptorKey } from '../../../shared/ml/base-models.js';
import { saveModel } from '../../../shared/ml/model-io.js';
import { putJson, type ObjectStore } from '../../../shared/ports/object-store.js';
import type { JobStatus } from '../../../shared/schemas/job.js';
import type { LabelValue } from '../../../shared/schemas/manifest.js';
import type { DatasetReport, SplitName } from '../../../shared/schemas/report.js';
import { TrainSpecSchema, type TrainSpecInput } from '../../../shared/schemas/spec.js';
import { loadTf } from '../../../shared/tf/loader.js';

export const SHAPE: [number, number, number] = [16, 16, 3];
const PER = SHAPE[0] * SHAPE[1] * SHAPE[2];

/**
 * Image of class c: a bright channel (c mod 3) and, for c ≥ 3, a bright left half,
 * with deterministic noise from `seed`, so up to 6 classes are learnable.
 */
export function image(c: number, seed: number): Uint8Array {
  const px = new Uint8Array(PER);
  for (let p = 0; p < PER; p++) {
    const ch = p % 3;
    const col = Math.floor(p / 3) % SHAPE[1];
    const noise = Math.abs(Math.sin((seed + 1) * 12.9898 + p * 78.233)) * 70;
    const bright = ch === c % 3 || (c >= 3 && col < SHAPE[1] / 2 && ch === (c + 1) % 3);
    px[p] = Math.min(255, (bright ? 150 : 20) + noise);
  }
  return px;
}

export interface DatasetOptions {
  dataset: string;
  hash: string;
  /** Task name. @default class */
  task?: string;
  classes: string[];
  /** Class index of each class name's images (lets two tasks share images). @default the position in `classes` */
  imageClass?: (label: string) => number;
  perSplit?: Partial<Record<SplitName, number>>;
  spec?: TrainSpecInput;
  /** Offset of the noise seeds (same offset = same pixels). @default 0 */
  seed?: number;
  /**
   * Labels of a record from its class index, for datasets with other tasks than one
   * classification (multilabel, regression); `tasks` is then the report's task summary.
   */
  labelsOf?: (classIndex: number) => Record<string, LabelValue>;
  tasks?: DatasetReport['tasks'];
}

/** Writes shards, report and a submitted job status. */
export async function writeDataset(store: ObjectStore, o: DatasetOptions): Promise<{ preparedPrefix: string; jobId: string; report: DatasetReport }> {
  const task = o.task ?? 'class';
  const per = { train: 24, validation: 9, test: 9, ...o.perSplit };
  const prefix = `prepared/${o.dataset}/${o.hash}`;
  const spec = TrainSpecSchema.parse(o.spec ?? { base: 'none' });
  const shards: DatasetReport['shards'] = [];
  const counts: Record<string, number> = Object.fromEntries(o.classes.map((c) => [c, 0]));
  let seed = o.seed ?? 0;
  for (const split of ['train', 'validation', 'test'] as SplitName[]) {
    const n = per[split];
    const data = new Uint8Array(n * PER);
    const records = Array.from({ length: n }, (_, i) => {
      const label = o.classes[i % o.classes.length];
      data.set(image(o.imageClass ? o.imageClass(label) : i % o.classes.length, seed++), i * PER);
      counts[label]++;
      return { key: `datasets/${o.dataset}/${label}/${split}-${i}.png`, labels: o.labelsOf ? o.labelsOf(i % o.classes.length) : { [task]: label } };
    });
    const key = `${prefix}/${split}-0.shard`;
    await store.put(key, encodeShard({ split, dtype: 'uint8', shape: [...SHAPE], records, data }));
    shards.push({ key, split, count: n });
  }
  const total = per.train + per.validation + per.test;
  const report: DatasetReport = {
    dataset: o.dataset,
    hash: o.hash,
    layout: 'folders',
    spec,
    inputShape: [...SHAPE],
    records: { total, used: total, skipped: 0 },
    splits: { train: per.train, validation: per.validation, test: per.test },
    tasks: o.tasks ?? { [task]: { type: 'classification', labelled: total, classes: counts } },
    skipped: [],
    shards,
    createdAt: new Date().toISOString(),
  };
  await putJson(store, `${prefix}/report.json`, report);
  const model = spec.model ?? o.dataset;
  const jobId = `train-${model}-${o.hash}`;
  const t = new Date().toISOString();
  const status: JobStatus = { jobId, model, dataset: o.dataset, datasetHash: o.hash, state: 'submitted', progress: 0, metrics: {}, createdAt: t, updatedAt: t };
  await putJson(store, jobStatusKey(jobId), status);
  return { preparedPrefix: prefix, jobId, report };
}

/** The pixels of a split of a dataset written by writeDataset, and their labels. */
export function splitImages(classes: string[], n: number, seedStart: number): { pixels: Uint8Array; labels: string[] } {
  const pixels = new Uint8Array(n * PER);
  const labels: string[] = [];
  for (let i = 0; i < n; i++) {
    pixels.set(image(i % classes.length, seedStart + i), i * PER);
    labels.push(classes[i % classes.length]);
  }
  return { pixels, labels };
}

export async function png(pixels: Uint8Array): Promise<string> {
  return (
    await sharp(Buffer.from(pixels), { raw: { width: SHAPE[1], height: SHAPE[0], channels: 3 } })
      .png()
      .toBuffer()
  ).toString('base64');
}

/**
 * A tiny base model stored as `base-models/tiny`: conv 3×3 → conv 1×1 → batch
 * norm → relu → global average pool → dense `emb` (the embedding layer, 8 values).
 */
export async function writeTinyBase(store: ObjectStore, extra: { fewShot?: unknown } = {}): Promise<void> {
  const { tf } = await loadTf();
  const input = tf.input({ shape: SHAPE, name: 'pixels' });
  let x = tf.layers
    .conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) })
    .apply(input);
  x = tf.layers.conv2d({ filters: 6, kernelSize: 1, name: 'c2', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(x);
  x = tf.layers
    .batchNormalization({
      name: 'bn2',
      movingMeanInitializer: tf.initializers.constant({ value: 0.1 }),
      movingVarianceInitializer: tf.initializers.constant({ value: 2 }),
    })
    .apply(x);
  x = tf.layers.reLU({ name: 'relu2' }).apply(x);
  x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x);
  const emb = tf.layers.dense({ units: 8, activation: 'relu', name: 'emb', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }).apply(x);
  const model = tf.model({ inputs: input, outputs: emb as never });
  await saveModel(model, store, baseModelPrefix('tiny'));
  model.dispose();
  await putJson(store, descriptorKey('tiny'), {
    name: 'tiny',
    inputShape: SHAPE,
    normalization: { scale: 1 / 255, offset: 0 },
    embedding: { layer: 'emb', pooling: 'none', size: 8 },
    modelKey: `${baseModelPrefix('tiny')}/model.json`,
    provenance: { source: 'transfer test fixture' },
    ...extra,
  });
}

export const COLOURS = ['blue', 'green', 'red'];
/** Training settings that make the tiny jobs of these tests converge in seconds. */
export const FAST = { epochs: 15, batchSize: 8, learningRate: 0.01, patience: 15 };

/**
 * A "tone" task (dark / light) on the colour images, extending a published
 * `colours` version: what the continual-learning tests add to a model.
 */
export function tonesExtending(from: string, hash: string, spec: Partial<TrainSpecInput> = {}): DatasetOptions {
  return {
    dataset: 'tones',
    hash,
    task: 'tone',
    classes: ['dark', 'light'],
    imageClass: (l) => (l === 'light' ? 1 : 0),
    seed: 700,
    spec: { model: 'colours', base: 'tiny', from, tasks: [{ name: 'tone' }], ...spec },
  };
}

/** Writes a dataset, runs its training job to success, and returns the version, status and report. */
export async function runJob(store: ObjectStore, o: DatasetOptions) {
  const { preparedPrefix, jobId } = await writeDataset(store, o);
  const result = await runTrainingJob({ jobId, preparedPrefix }, { store, statusIntervalMs: 0 });
  const status = await readJobStatus(store, jobId);
  expect(result.ok, JSON.stringify(status?.error)).toBe(true);
  const version = (result as { version: string }).version;
  return { version, status: status!, report: await getJson<Record<string, any>>(store, `${versionPrefix(status!.model, version)}/report.json`) };
}
