import { z } from 'zod';
import { assignSplits } from '../../shared/data/split.js';
import {
  assertTrainable,
  DatasetError,
  datasetContentHash,
  datasetPrefix,
  detectLayout,
  listDatasetObjects,
  MANIFEST_FILE,
  parseVectorManifest,
  readDatasetContents,
  readManifestText,
  SPEC_FILE,
  summarizeTasks,
  type DatasetItem,
  type SkippedFile,
  type VectorManifestEntry,
} from '../../shared/data/dataset.js';
import { decodeImage, ImageDecodeError } from '../../shared/data/images.js';
import { encodeShard, encodeShardFrom, type ShardRecord } from '../../shared/data/shards.js';
import { jobIdFor, jobStatusKey, modelJobPointerKey, readJobStatus, reconcileJobStatus, updateJobStatus } from '../../shared/jobs/status.js';
import { resolveBase, UnknownBaseModelError } from '../../shared/ml/base-models.js';
import { publishPrototypeModel, PrototypeInputError } from '../../shared/ml/prototype-job.js';
import { ContinualError, resolveFrom } from '../../shared/ml/continual.js';
import type { JobRunner } from '../../shared/ports/job-runner.js';
import { getJsonIfExists, NotFoundError, putJson, type ObjectStore } from '../../shared/ports/object-store.js';
import { NameSchema } from '../../shared/schemas/common.js';
import { TrainJobEnvSchema } from '../../shared/schemas/env.js';
import type { ObjectCreated } from '../../shared/schemas/events.js';
import { JobStatusSchema, SKIPPED_SHOWN, TERMINAL_STATES, type JobState, type JobStatus, type RecordsSummary } from '../../shared/schemas/job.js';
import { DatasetReportSchema, type DatasetReport, type SplitName } from '../../shared/schemas/report.js';
import { tasksOf, TrainSpecSchema, type Task, type TrainSpec } from '../../shared/schemas/spec.js';
import { forEachLimited } from '../../shared/concurrency.js';

/**
 * Preprocessing: from an uploaded `datasets/<dataset>/train.json` to prepared
 * shards, a dataset report and a submitted training job, exactly once per dataset
 * content. Problems the uploader can fix end the job as `failed` with a code and a
 * message and return normally (a retry would fail the same way); anything else
 * (store or runner failures) throws so that the queue delivers the message again.
 */

/** `jobs/<jobId>/preprocess-claim.json`: when the delivery working on a dataset claimed it. */
const ClaimSchema = z.looseObject({ at: z.string().optional() });

/** Codes a failed preprocessing job can carry in `status.error.code`. */
export type PreprocessErrorCode =
  DatasetError['code'] | 'INVALID_SPEC' | 'INVALID_DATASET_NAME' | 'UNKNOWN_BASE_MODEL' | 'UNSUPPORTED_INPUT' | 'NO_USABLE_IMAGES';

/** A problem with the upload itself; retrying cannot fix it. */
export class PreprocessInputError extends Error {
  override name = 'PreprocessInputError';
  constructor(
    readonly code: PreprocessErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Another delivery of the same dataset content is being prepared right now. Thrown
 * (not returned) so the queue redelivers the message later, when that delivery has
 * either submitted the job (the message is then a duplicate) or died (its claim is
 * then stale and this delivery takes over).
 */
export class PreprocessBusyError extends Error {
  override name = 'PreprocessBusyError';
}

/** Minimal logger; `console` and Powertools' Logger both fit. */
export interface PreprocessLog {
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

export interface PreprocessOptions {
  /** Images decoded at once; sharp decodes on libuv's 4 threads. @default 4 */
  concurrency?: number;
  /** Records per shard object. @default 256 */
  shardSize?: number;
  /**
   * Age after which a claim left by a delivery that died (timeout, out of memory)
   * is taken over. Lambda runs at most 15 minutes.
   * @default 900_000
   */
  claimStaleAfterMs?: number;
}

export interface PreprocessDeps {
  store: ObjectStore;
  jobs: JobRunner;
  log?: PreprocessLog;
  options?: PreprocessOptions;
}

export type PreprocessResult =
  /** Not a train.json of a dataset, or nothing left to do with it. */
  | { outcome: 'ignored'; reason: string }
  /** This dataset content already has a job (redelivery or the same upload again). */
  | { outcome: 'duplicate'; jobId: string; state: JobState }
  | { outcome: 'failed'; jobId: string; error: { code: PreprocessErrorCode; message: string } }
  | { outcome: 'submitted'; jobId: string; runnerJobId: string; preparedPrefix: string; reusedReport: boolean }
  /** mode "prototype": a nearest-class-mean model published right here, no training job. */
  | { outcome: 'published'; jobId: string; model: string; version: string; promoted: boolean };

const SPEC_KEY = /^datasets\/([^/]+)\/train\.json$/;

/** Marks that one delivery is preparing a job, so concurrent duplicates back off. */
const claimKeyOf = (jobId: string) => `jobs/${jobId}/preprocess-claim.json`;

export { modelJobPointerKey };

export const preparedPrefixOf = (dataset: string, hash: string) => `prepared/${dataset}/${hash}`;

/** Handles one "object created" event; see the module comment for what it guarantees. */
export async function preprocessDataset(event: ObjectCreated, deps: PreprocessDeps): Promise<PreprocessResult> {
  const { store, log } = deps;
  const match = SPEC_KEY.exec(event.key);
  if (!match) return { outcome: 'ignored', reason: `${event.key} is not datasets/<dataset>/${SPEC_FILE}` };
  const dataset = match[1];
  if (dataset === '.' || dataset === '..') return { outcome: 'ignored', reason: `${event.key} does not name a dataset folder` };

  let specBytes: Buffer;
  try {
    specBytes = await store.get(event.key);
  } catch (err) {
    // Deleted since the event: a later upload of train.json brings its own event.
    if (err instanceof NotFoundError) return { outcome: 'ignored', reason: `${event.key} no longer exists` };
    throw err;
  }
  const parsed = parseSpec(specBytes);
  const datasetNameOk = NameSchema.safeParse(dataset).success;
  const model = parsed.spec?.model ?? dataset;
  if (!NameSchema.safeParse(model).success) {
    // Without a valid model name there is no key to report a failure under.
    log?.error('dataset name is not usable as a model name and train.json names no valid model', { dataset });
    return { outcome: 'ignored', reason: `dataset name "${dataset}" is invalid: ${NameSchema.safeParse(dataset).error?.issues[0]?.message}` };
  }

  const objects = await listDatasetObjects(store, dataset);
  const hash = datasetContentHash(objects, dataset, specBytes);
  const jobId = jobIdFor(model, hash);
  const now = new Date().toISOString();
  const initial: JobStatus = JobStatusSchema.parse({
    jobId,
    model,
    dataset,
    datasetHash: hash,
    state: 'submitted',
    phase: 'preparing',
    createdAt: now,
    updatedAt: now,
  });
  const created = await store.putIfAbsent(jobStatusKey(jobId), JSON.stringify(initial, null, 2), { contentType: 'application/json' });
  const settled = async (): Promise<PreprocessResult | undefined> => {
    const recorded = await readJobStatus(store, jobId);
    if (!recorded || (recorded.runnerJobId === undefined && !TERMINAL_STATES.includes(recorded.state))) return undefined;
    // "Running" with no process behind it (it died unable to record its end) is an
    // orphan: reconciled to failed here, so this upload retries it.
    const existing = await reconcileJobStatus(store, deps.jobs, recorded);
    if (existing !== recorded) log?.warn('job had ended without recording it; retrying it', { jobId, error: existing.error });
    // A job that failed or was cancelled after it was submitted (Spot reclaimed, out
    // of memory, a crash, a timeout) runs again when its train.json is uploaded again.
    // Failures of the input itself (recorded before submitting) would fail the same way.
    if ((existing.state === 'failed' || existing.state === 'cancelled') && existing.runnerJobId !== undefined) return undefined;
    log?.info('dataset content already has a job', { jobId, state: existing.state });
    return { outcome: 'duplicate', jobId, state: existing.state };
  };
  if (!created) {
    const done = await settled();
    if (done) return done;
  }
  // S3 may deliver one notification twice at once; only the holder of the claim works.
  const claimKey = await acquireClaim(deps, jobId, now);
  try {
    if (!created) {
      // The holder before us records the job before it releases the claim, so a
      // delivery that got the claim just after it finished sees the job here.
      const done = await settled();
      if (done) {
        await store.delete(claimKey);
        return done;
      }
    }
    await putJson(store, modelJobPointerKey(model), { jobId });
    if (parsed.error) throw parsed.error;
    const spec = parsed.spec;
    if (!datasetNameOk) {
      throw new PreprocessInputError(
        'INVALID_DATASET_NAME',
        `dataset name "${dataset}" is invalid: ${NameSchema.safeParse(dataset).error?.issues[0]?.message}`,
      );
    }
    const preparedPrefix = preparedPrefixOf(dataset, hash);
    const reportKey = `${preparedPrefix}/report.json`;
    // The report is written after every shard, so its presence means the data is complete.
    const previous = DatasetReportSchema.safeParse(await getJsonIfExists(store, reportKey));
    let report: DatasetReport;
    if (previous.success) {
      report = previous.data;
      log?.info('reusing prepared data', { preparedPrefix });
    } else {
      report = await prepareDataset({ store, dataset, hash, spec, objects, preparedPrefix, options: deps.options, log });
      await putJson(store, reportKey, report);
    }

    const records = recordsSummary(report, reportKey);
    if (spec.mode === 'prototype') {
      // Few-shot: nothing to train, so the model is published here, in seconds.
      const published = await publishPrototypeJob(deps, { jobId, report, records });
      await store.delete(claimKey);
      return published;
    }
    const env = TrainJobEnvSchema.parse({ TL_JOB_ID: jobId, TL_PREPARED_PREFIX: preparedPrefix });
    // Reset before submitting: a rerun of a failed job starts clean, and the job's
    // own first write (running) cannot be overwritten by ours.
    await updateJobStatus(store, jobId, {
      state: 'submitted',
      phase: 'queued',
      progress: 0,
      error: undefined,
      version: undefined,
      promoted: undefined,
      promotionReason: undefined,
      records,
    });
    const { runnerJobId } = await deps.jobs.submit({ jobId, env });
    await updateJobStatus(store, jobId, { runnerJobId });
    await store.delete(claimKey);
    log?.info('training job submitted', { jobId, runnerJobId, preparedPrefix, used: report.records.used, skipped: report.records.skipped });
    return { outcome: 'submitted', jobId, runnerJobId, preparedPrefix, reusedReport: previous.success };
  } catch (err) {
    const inputError = asInputError(err);
    if (!inputError) {
      // Release the claim so the redelivery retries at once; if even that fails,
      // the claim goes stale and a later delivery takes over.
      await store.delete(claimKey).catch(() => undefined);
      throw err;
    }
    const error = { code: inputError.code, message: inputError.message };
    try {
      await updateJobStatus(store, jobId, { state: 'failed', error });
    } finally {
      await store.delete(claimKey).catch(() => undefined);
    }
    log?.warn('dataset refused', { jobId, ...error });
    return { outcome: 'failed', jobId, error };
  }
}

/** Takes the preparation claim for a job, or throws PreprocessBusyError while a live delivery holds it. */
async function acquireClaim(deps: PreprocessDeps, jobId: string, now: string): Promise<string> {
  const { store, log } = deps;
  const claimKey = claimKeyOf(jobId);
  const claim = JSON.stringify({ at: now });
  if (await store.putIfAbsent(claimKey, claim, { contentType: 'application/json' })) return claimKey;
  // A claim that does not parse is treated as stale, like one without a time.
  const held = ClaimSchema.safeParse(await getJsonIfExists(store, claimKey)).data;
  const age = held?.at ? Date.now() - Date.parse(held.at) : Number.POSITIVE_INFINITY;
  if (age < (deps.options?.claimStaleAfterMs ?? 900_000)) throw new PreprocessBusyError(`job ${jobId} is being prepared by another delivery`);
  // An earlier attempt died before submitting: carry on from where it stopped.
  log?.info('taking over a job that was never submitted', { jobId });
  await store.put(claimKey, claim, { contentType: 'application/json' });
  return claimKey;
}

/** Few-shot: publishes the prototype model and records the job as succeeded. */
async function publishPrototypeJob(deps: PreprocessDeps, job: { jobId: string; report: DatasetReport; records: RecordsSummary }): Promise<PreprocessResult> {
  const { store, log } = deps;
  const { jobId } = job;
  await updateJobStatus(store, jobId, { state: 'running', phase: 'prototypes', progress: 0.5, records: job.records });
  const published = await publishPrototypeModel({ store, report: job.report, jobId });
  await updateJobStatus(store, jobId, {
    state: 'succeeded',
    phase: 'done',
    progress: 1,
    version: published.version,
    promoted: published.promotion.promote,
    embeddingCache: published.embeddingCache,
  });
  log?.info('prototype model published', { jobId, model: published.model, version: published.version, promotion: published.promotion.reason });
  return { outcome: 'published', jobId, model: published.model, version: published.version, promoted: published.promotion.promote };
}

/** The job status' view of the dataset report: counts and the first skipped files with their reasons. */
export function recordsSummary(report: DatasetReport, reportKey: string): RecordsSummary {
  return { ...report.records, firstSkipped: report.skipped.slice(0, SKIPPED_SHOWN), report: reportKey };
}

function asInputError(err: unknown): PreprocessInputError | undefined {
  if (err instanceof PreprocessInputError) return err;
  if (err instanceof DatasetError) return new PreprocessInputError(err.code, err.message);
  if (err instanceof UnknownBaseModelError) return new PreprocessInputError('UNKNOWN_BASE_MODEL', err.message);
  if (err instanceof PrototypeInputError || err instanceof ContinualError) return new PreprocessInputError('INVALID_SPEC', err.message);
  return undefined;
}

/** Parses train.json; a problem becomes an INVALID_SPEC error naming each field. */
export function parseSpec(bytes: Uint8Array): { spec: TrainSpec; error?: undefined } | { spec?: undefined; error: PreprocessInputError } {
  let json: unknown;
  try {
    json = JSON.parse(
      Buffer.from(bytes)
        .toString('utf8')
        .replace(/^\uFEFF/, ''),
    );
  } catch (err) {
    return { error: new PreprocessInputError('INVALID_SPEC', `${SPEC_FILE} is not valid JSON: ${(err as Error).message}`) };
  }
  const result = TrainSpecSchema.safeParse(json);
  if (!result.success) {
    const problems = result.error.issues.slice(0, 5).map((i) => (i.path.length ? `field "${i.path.join('.')}": ${i.message}` : i.message));
    const more = result.error.issues.length > 5 ? `; and ${result.error.issues.length - 5} more` : '';
    return { error: new PreprocessInputError('INVALID_SPEC', `${SPEC_FILE}: ${problems.join('; ')}${more}`) };
  }
  const spec = result.data;
  if (tasksOf(spec).every((t) => t.auxiliary)) {
    return {
      error: new PreprocessInputError(
        'INVALID_SPEC',
        `${SPEC_FILE}, field "tasks": every task is auxiliary; at least one task must be a main task for predict to return`,
      ),
    };
  }
  const noSharedLayer = spec.sharing.method === 'soft' || (spec.sharing.trunk.length === 0 && !spec.fineTune);
  // A continual spec trains the earlier model's layers: the job checks those (a frozen trunk cannot balance gradients either).
  if (spec.lossWeighting.method === 'gradnorm' && tasksOf(spec).length > 1 && noSharedLayer && !spec.from) {
    return {
      error: new PreprocessInputError(
        'INVALID_SPEC',
        `${SPEC_FILE}, field "lossWeighting": gradnorm balances the tasks' gradients on the last layer they share, and ${spec.sharing.method === 'soft' ? 'soft sharing shares none' : 'a hard trunk of no layers shares none'}; use sharing {"method": "hard", "trunk": [128]} or another loss weighting`,
      ),
    };
  }
  return { spec };
}

interface PrepareInput {
  store: ObjectStore;
  dataset: string;
  hash: string;
  spec: TrainSpec;
  objects: Awaited<ReturnType<typeof listDatasetObjects>>;
  preparedPrefix: string;
  options?: PreprocessOptions;
  log?: PreprocessLog;
}

const SPLITS: readonly SplitName[] = ['train', 'validation', 'test'];

/** Decodes, checks, splits and writes the shards; returns the report (not yet written). */
async function prepareDataset(input: PrepareInput): Promise<DatasetReport> {
  const { store, dataset, hash, spec, objects, preparedPrefix } = input;
  if (spec.input.type === 'vector') return prepareVectorDataset(input);
  const tasks: Task[] = tasksOf(spec);
  // An extended model keeps its own embedder, so its new images take that base's input shape.
  const base = await resolveBase(store, spec.from ? (await resolveFrom(store, spec.from)).base.name : spec.base);
  const inputShape: [number, number, number] = base.kind === 'pretrained' ? base.descriptor.inputShape : base.inputShape;

  const contents = await readDatasetContents(store, dataset, objects, tasks);
  const skipped: SkippedFile[] = [...contents.skipped];
  if (contents.items.length === 0) {
    const why = skipped.length === 0 ? 'it has no files besides train.json' : `none of its ${skipped.length} files is a record (${describeSkipped(skipped)})`;
    throw new PreprocessInputError('EMPTY_DATASET', `dataset "${dataset}" is empty: ${why}`);
  }

  // Decoded pixels stay in memory until the split is known (it needs every usable
  // record's labels): 224×224×3 is 150 kB per image, so ~6,000 images per GB.
  const pixels: Array<Uint8Array | undefined> = new Array(contents.items.length);
  await forEachLimited(contents.items, input.options?.concurrency ?? 4, async (item, i) => {
    let bytes: Buffer;
    try {
      bytes = await store.get(item.objectKey);
    } catch (err) {
      if (err instanceof NotFoundError) {
        skipped.push({ key: item.key, reason: 'deleted before it could be read' });
        return;
      }
      throw err;
    }
    try {
      pixels[i] = await decodeImage(bytes, inputShape);
    } catch (err) {
      if (!(err instanceof ImageDecodeError)) throw err;
      skipped.push({ key: item.key, reason: err.message });
    }
  });
  const usable: Array<DatasetItem & { pixels: Uint8Array }> = [];
  contents.items.forEach((item, i) => {
    const p = pixels[i];
    if (p) usable.push({ ...item, pixels: p });
  });
  skipped.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (usable.length === 0) {
    throw new PreprocessInputError('NO_USABLE_IMAGES', `dataset "${dataset}" has no usable images: ${describeSkipped(skipped)}`);
  }

  const summary = summarizeTasks(tasks, usable);
  // A prototype needs one example per class (publishPrototypeModel checks the classes); training needs more.
  if (spec.mode !== 'prototype') assertTrainable(tasks, summary);

  const splits = assignSplits(usable, spec.training, tasks);
  const shardSize = input.options?.shardSize ?? 256;
  const shards: DatasetReport['shards'] = [];
  const counts = { train: 0, validation: 0, test: 0 } satisfies Record<SplitName, number>;
  for (const split of SPLITS) {
    const members = usable.filter((_, i) => splits[i] === split).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    counts[split] = members.length;
    for (let start = 0, n = 0; start < members.length; start += shardSize, n++) {
      const chunk = members.slice(start, start + shardSize);
      const records: ShardRecord[] = chunk.map((m) => ({ key: m.key, labels: m.labels }));
      const key = `${preparedPrefix}/shards/${split}-${String(n).padStart(5, '0')}.bin`;
      const body = encodeShardFrom(
        { split, dtype: 'uint8', shape: [...inputShape], records },
        chunk.map((m) => m.pixels),
      );
      await store.put(key, body, { contentType: 'application/octet-stream' });
      shards.push({ key, split, count: chunk.length });
    }
  }
  input.log?.info('dataset prepared', { dataset, hash, used: usable.length, skipped: skipped.length, splits: counts });
  return DatasetReportSchema.parse({
    dataset,
    hash,
    layout: contents.layout,
    spec,
    inputShape: [...inputShape],
    records: { total: usable.length + skipped.length, used: usable.length, skipped: skipped.length },
    splits: counts,
    tasks: summary,
    skipped,
    shards,
    createdAt: new Date().toISOString(),
  });
}

/**
 * A vector (tabular) dataset: the records are the lines of manifest.jsonl,
 * `{"features": [numbers or null], "labels": {...}}`, split by a key made of the
 * line number, and written as float32 shards of the raw values (NaN for null).
 * Standardisation and imputation are the model's (shared/ml/features.ts): fitted
 * in the job on the train split, so the prepared data stays what was uploaded.
 */
async function prepareVectorDataset(input: PrepareInput): Promise<DatasetReport> {
  const { store, dataset, hash, spec, objects, preparedPrefix } = input;
  const refuse = (message: string) => new PreprocessInputError('INVALID_SPEC', `${SPEC_FILE}: ${message}`);
  if (spec.base !== 'none') throw refuse(`vector inputs need base "none", not "${spec.base}": a pretrained base reads images`);
  if (spec.mode === 'prototype') throw refuse('mode "prototype" reads images through a base; vector inputs train with mode "train"');
  if (spec.from) throw refuse('continual learning ("from") is not supported for vector inputs yet');
  const tasks: Task[] = tasksOf(spec);
  if (detectLayout(objects, dataset) !== 'manifest') {
    throw new DatasetError(
      'INVALID_DATASET',
      `a vector dataset needs ${MANIFEST_FILE} with one {"features": [...], "labels": {...}} per line; dataset "${dataset}" has none`,
    );
  }
  const prefix = datasetPrefix(dataset);
  const entries = parseVectorManifest(await readManifestText(store, prefix), tasks, spec.input.size);
  const skipped: SkippedFile[] = objects
    .map((o) => o.key.slice(prefix.length))
    .filter((k) => k !== SPEC_FILE && k !== MANIFEST_FILE)
    .map((key) => ({ key, reason: `not read: the records of a vector dataset are the lines of ${MANIFEST_FILE}` }));
  const records: Array<{ key: string; labels: VectorManifestEntry['labels']; features: VectorManifestEntry['features'] }> = [];
  for (const e of entries) {
    // The line number is the record's identity: appending lines keeps every earlier record in its split.
    const key = `${MANIFEST_FILE}#${e.line}`;
    if (Object.values(e.labels).every((v) => v === null)) skipped.push({ key, reason: `line ${e.line} of ${MANIFEST_FILE} gives no labels` });
    else records.push({ key, labels: e.labels, features: e.features });
  }
  if (records.length === 0) {
    const why = entries.length === 0 ? `${MANIFEST_FILE} has no records` : `none of its ${entries.length} lines gives a label`;
    throw new PreprocessInputError('EMPTY_DATASET', `dataset "${dataset}" is empty: ${why}`);
  }
  const size = records[0].features.length;
  const summary = summarizeTasks(tasks, records);
  assertTrainable(tasks, summary);
  const splits = assignSplits(records, spec.training, tasks);
  const shardSize = input.options?.shardSize ?? 256;
  const shards: DatasetReport['shards'] = [];
  const counts = { train: 0, validation: 0, test: 0 } satisfies Record<SplitName, number>;
  for (const split of SPLITS) {
    const members = records.filter((_, i) => splits[i] === split);
    counts[split] = members.length;
    for (let start = 0, n = 0; start < members.length; start += shardSize, n++) {
      const chunk = members.slice(start, start + shardSize);
      const data = new Float32Array(chunk.length * size);
      chunk.forEach((m, j) =>
        data.set(
          Float32Array.from(m.features, (v) => v ?? Number.NaN),
          j * size,
        ),
      );
      const key = `${preparedPrefix}/shards/${split}-${String(n).padStart(5, '0')}.bin`;
      const shardRecords: ShardRecord[] = chunk.map((m) => ({ key: m.key, labels: m.labels }));
      await store.put(key, encodeShard({ split, dtype: 'float32', shape: [size], records: shardRecords, data }), { contentType: 'application/octet-stream' });
      shards.push({ key, split, count: chunk.length });
    }
  }
  input.log?.info('dataset prepared', { dataset, hash, used: records.length, skipped: skipped.length, splits: counts, features: size });
  return DatasetReportSchema.parse({
    dataset,
    hash,
    layout: 'manifest',
    spec,
    inputShape: [size],
    records: { total: records.length + skipped.length, used: records.length, skipped: skipped.length },
    splits: counts,
    tasks: summary,
    skipped: skipped.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
    shards,
    createdAt: new Date().toISOString(),
  });
}

function describeSkipped(skipped: readonly SkippedFile[]): string {
  const shown = skipped.slice(0, 3).map((s) => `"${s.key}": ${s.reason}`);
  return shown.join('; ') + (skipped.length > 3 ? `; and ${skipped.length - 3} more` : '');
}
