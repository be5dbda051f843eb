/** Tiny synthetic prepared datasets for training-job tests: coloured noise images per class. */
import { encodeShard, readSplit } from '../../../shared/data/shards.js';
import { resolveBase } from '../../../shared/ml/base-models.js';
import { loadEmbedder } from '../../../shared/ml/embedder.js';
import { loadModel } from '../../../shared/ml/model-io.js';
import { predictTasks } from '../../../shared/ml/predict.js';
import { readMetadata } from '../../../shared/models/registry.js';
import { jobStatusKey } from '../../../shared/jobs/status.js';
import { putJson, type ObjectStore } from '../../../shared/ports/object-store.js';
import type { JobStatus } from '../../../shared/schemas/job.js';
import type { DatasetReport, SplitName } from '../../../shared/schemas/report.js';
import { TrainSpecSchema, type TrainSpecInput } from '../../../shared/schemas/spec.js';

export const SHAPE: [number, number, number] = [32, 32, 3];
export const CLASSES = ['blue', 'green', 'red'];

export interface FixtureOptions {
  dataset?: string;
  hash?: string;
  spec?: TrainSpecInput;
  perSplit?: Partial<Record<SplitName, number>>;
  /** Records (by index within the train split) whose label is null. */
  unlabelled?: number[];
  /** Records (by index within the train split) labelled with the next class instead of their own: label noise, so no model is right on every record. */
  mislabelled?: number[];
  classes?: string[];
  /** Write float32 feature vectors of this length instead of images. */
  vectorSize?: number;
  /** More classification tasks: each record's label from its class (null: unlabelled). */
  moreTasks?: Record<string, (cls: string, split: SplitName, i: number) => string | null>;
}

/** Image i of class c: channel (2 - c) bright, the others dark, with deterministic noise. */
function image(c: number, i: number): Uint8Array {
  const px = new Uint8Array(SHAPE[0] * SHAPE[1] * SHAPE[2]);
  for (let p = 0; p < px.length; p++) {
    const channel = p % 3;
    const noise = Math.abs(Math.sin((i + 1) * 12.9898 + p * 78.233)) * 90;
    px[p] = Math.min(255, (channel === 2 - (c % 3) ? 140 : 20) + noise);
  }
  return px;
}

/** Writes shards, the dataset report and a `submitted` job status; returns the prefix and job id. */
export async function writePreparedDataset(
  store: ObjectStore,
  opts: FixtureOptions = {},
): Promise<{ preparedPrefix: string; jobId: string; report: DatasetReport }> {
  const dataset = opts.dataset ?? 'colours';
  const hash = opts.hash ?? 'abc123';
  const classes = opts.classes ?? CLASSES;
  const per = { train: 18, validation: 6, test: 6, ...opts.perSplit };
  const prefix = `prepared/${dataset}/${hash}`;
  const spec = TrainSpecSchema.parse(opts.spec ?? { base: 'none', training: { epochs: 15, batchSize: 8, learningRate: 0.003, patience: 15 } });
  const shards: DatasetReport['shards'] = [];
  const counts: Record<string, number> = Object.fromEntries(classes.map((c) => [c, 0]));
  let labelled = 0;
  const more = Object.entries(opts.moreTasks ?? {});
  const moreTasks: DatasetReport['tasks'] = Object.fromEntries(more.map(([name]) => [name, { type: 'classification', labelled: 0, classes: {} }]));
  let seed = 0;
  for (const split of ['train', 'validation', 'test'] as SplitName[]) {
    const n = per[split];
    const v = opts.vectorSize;
    const recordShape = v ? [v] : SHAPE;
    const perRecord = recordShape.reduce((a, b) => a * b, 1);
    const data = v ? new Float32Array(n * v) : new Uint8Array(n * perRecord);
    const records = Array.from({ length: n }, (_, i) => {
      const c = i % classes.length;
      if (v) for (let j = 0; j < v; j++) data[i * v + j] = (j % classes.length === c ? 1 : 0) + 0.2 * Math.sin(seed * 3.7 + j);
      else data.set(image(c, seed), i * perRecord);
      seed++;
      const missing = split === 'train' && opts.unlabelled?.includes(i);
      const given = classes[split === 'train' && opts.mislabelled?.includes(i) ? (c + 1) % classes.length : c];
      if (!missing) {
        counts[given] += 1;
        labelled += 1;
      }
      const labels: Record<string, string | null> = { class: missing ? null : given };
      for (const [name, labelOf] of more) {
        const label = (labels[name] = labelOf(classes[c], split, i));
        if (label === null) continue;
        const t = moreTasks[name];
        t.labelled += 1;
        t.classes![label] = (t.classes![label] ?? 0) + 1;
      }
      return { key: `datasets/${dataset}/${classes[c]}/${split}-${i}.png`, labels };
    });
    const key = `${prefix}/${split}-0.shard`;
    await store.put(key, encodeShard({ split, dtype: v ? 'float32' : 'uint8', shape: [...recordShape], records, data }));
    shards.push({ key, split, count: n });
  }
  const total = per.train + per.validation + per.test;
  const report: DatasetReport = {
    dataset,
    hash,
    layout: 'folders',
    spec,
    inputShape: opts.vectorSize ? [opts.vectorSize] : [...SHAPE],
    records: { total, used: total, skipped: 0 },
    splits: { train: per.train, validation: per.validation, test: per.test },
    tasks: { class: { type: 'classification', labelled, classes: counts }, ...moreTasks },
    skipped: [],
    shards,
    createdAt: new Date().toISOString(),
  };
  await putJson(store, `${prefix}/report.json`, report);
  const jobId = `train-${spec.model ?? dataset}-${hash}`;
  const t = new Date().toISOString();
  const status: JobStatus = {
    jobId,
    model: spec.model ?? dataset,
    dataset,
    datasetHash: hash,
    state: 'submitted',
    progress: 0,
    metrics: {},
    createdAt: t,
    updatedAt: t,
  };
  await putJson(store, jobStatusKey(jobId), status);
  return { preparedPrefix: prefix, jobId, report };
}

/** An ObjectStore that records every put key (in order) and can fail chosen puts. */
export function recordingStore(
  inner: ObjectStore,
  failPut?: (key: string, n: number) => boolean,
): ObjectStore & { puts: Array<{ key: string; body: string }> } {
  const puts: Array<{ key: string; body: string }> = [];
  let n = 0;
  return {
    puts,
    get: (k) => inner.get(k),
    list: (p) => inner.list(p),
    delete: (k) => inner.delete(k),
    presignPut: (k, o) => inner.presignPut(k, o),
    putIfAbsent: (k, b, o) => inner.putIfAbsent(k, b, o),
    async put(key, body, o) {
      if (failPut?.(key, n++)) throw new Error(`simulated crash writing ${key}`);
      puts.push({ key, body: key.endsWith('.json') ? Buffer.from(body as Uint8Array).toString('utf8') : '' });
      return inner.put(key, body, o);
    },
  };
}

/**
 * Test accuracy per task of a published version served as predict serves it (the
 * embedder its metadata names, cut where it says, then its heads) on a prepared test split.
 */
export async function servedTestAccuracy(
  store: ObjectStore,
  model: string,
  version: string,
  report: DatasetReport,
  tasks: string[],
): Promise<Record<string, number>> {
  const meta = (await readMetadata(store, model, version))!;
  const test = await readSplit(store, report, 'test');
  const embedder = await loadEmbedder(store, await resolveBase(store, meta.base.name), meta.base.cut ? { embedding: meta.base.cut } : {});
  const heads = await loadModel(store, `models/${model}/${version}`);
  try {
    const x = await embedder.embed(test.data as Uint8Array, test.records.length, { sourceShape: SHAPE });
    const out = await predictTasks(heads, meta.tasks, x, test.records.length, { topK: 1 });
    return Object.fromEntries(
      tasks.map((task) => [task, out.filter((p, i) => (p[task] as { label?: string }).label === test.records[i].labels[task]).length / test.records.length]),
    );
  } finally {
    heads.dispose();
    embedder.dispose();
  }
}
