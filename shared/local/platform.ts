import { createHash, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import type { Server } from 'node:http';
import { FsObjectStore, ObjectTooLargeError, verifyLocalUploadSignature } from '../adapters/local/fs-object-store.js';
import { ChildProcessJobRunner, type ChildProcessJobRunnerOptions } from '../adapters/local/child-process-runner.js';
import type { JobDescription, JobRunner } from '../ports/job-runner.js';
import type { ObjectStore } from '../ports/object-store.js';
import { TERMINAL_STATES } from '../schemas/job.js';
import { jobEndCode, readJobStatus, updateJobStatus } from '../jobs/status.js';
import { collectGarbage } from '../models/garbage.js';
import { preferShortGcPauses } from '../heap.js';
import { EngineEnvSchema, loadEnv } from '../schemas/env.js';
import { createHandler as createPredictHandler } from '../../functions/predict/handler.js';
import { createModelCache } from '../../functions/predict/model-cache.js';
import type { ModelCache } from '../../functions/predict/core.js';
import type { ModelMetadata } from '../schemas/model.js';
import { resolveModel } from '../models/registry.js';
import { createHandler as createUploadsHandler } from '../../functions/uploads/handler.js';
import { createHandler as createPreprocessHandler } from '../../functions/preprocess/handler.js';
import { InProcessQueue, s3EventBody } from './queue.js';
import { createLocalGateway, listen, PayloadTooLargeError, type LocalGatewayTenant } from './server.js';
import { loadOrCreateTenants, type Tenant } from './tenants.js';
import { retryingLazy } from '../lazy.js';
import { Logger } from '@aws-lambda-powertools/logger';
import { structuredLog, type LogFn } from '../observability.js';

export interface PlatformOptions {
  /** @default ".data" */
  dataDir: string;
  /** 0 picks a free port. @default 8080 */
  port?: number;
  /** @default "127.0.0.1" */
  host?: string;
  /** Where the platform's own lines go. @default JSON lines through a Powertools Logger (service `platform`), indented in a terminal */
  log?: LogFn;
  /** Overrides for the job runner (tests run jobs with other commands or output sinks). */
  runner?: ChildProcessJobRunnerOptions;
  /** Models kept loaded per tenant. @default 4 */
  modelCacheSize?: number;
  /** Delay before a failed queue message is retried. @default 2000 */
  retryDelayMs?: number;
  /** Delay between attempts to record the end of a job that could not be recorded (full disk). @default 2000 */
  recordRetryMs?: number;
  /** Predict calls in flight at once before the gateway answers 429. @default DEFAULT_MAX_INFLIGHT_PREDICTS (16) */
  maxInFlightPredicts?: number;
  /** Serve the dashboard at `/` (bundled with esbuild on first request). @default true */
  dashboard?: boolean;
  /** Fault injection for tests of full and read-only disks; see `FsObjectStoreOptions.faultFile`. */
  faultFile?: string;
}

export interface TenantRuntime extends LocalGatewayTenant {
  tenant: Tenant;
  store: FsObjectStore;
  /** The predict handler's loaded models. */
  models: ModelCache;
  queue: InProcessQueue;
  bucketDir: string;
}

export interface Platform {
  url: string;
  dataDir: string;
  tenants: TenantRuntime[];
  defaultTenant: TenantRuntime;
  runner: ChildProcessJobRunner;
  /** Resolves when every queue is drained and no job is running. */
  whenIdle(): Promise<void>;
  /** Removes what interrupted work left behind (see `collectGarbage`), in every tenant's bucket; runs by itself on start and whenever the last job ends. */
  collectGarbage(): Promise<void>;
  stop(): Promise<void>;
}

const TRAIN_JSON = /^datasets\/[^/]+\/train\.json$/;

/** Temporary files younger than this may belong to a write in progress (an upload streaming in). */
const TEMP_FILE_MAX_AGE_MS = 15 * 60 * 1000;

/**
 * Starts the embedded default: per tenant a folder bucket, an in-process queue
 * fed by "object created" events for train.json, the preprocess handler as its
 * consumer, and the predict and uploads handlers behind a local API gateway;
 * training jobs run as child processes.
 */
export async function startPlatform(options: PlatformOptions): Promise<Platform> {
  // This process serves predictions: rare full GC pauses (shared/heap.ts).
  preferShortGcPauses();
  // Read lazily by the engine and by every job process: a typo would only show when the
  // first job failed. Checked here, it stops the start with the setting's name.
  loadEnv(EngineEnvSchema);
  const log = options.log ?? structuredLog(new Logger({ serviceName: 'platform' }));
  const dataDir = path.resolve(options.dataDir);
  const file = await loadOrCreateTenants(dataDir);
  const byKeyHash: Array<{ hash: Buffer; rt: TenantRuntime }> = [];
  const byId = new Map<string, TenantRuntime>();
  const sha256 = (text: string) => createHash('sha256').update(text).digest();
  // Keys are compared in constant time: every tenant's key hash is compared in full,
  // so the time taken says nothing about how much of a guess was right.
  const tenantByApiKey = (key: string): TenantRuntime | undefined => {
    const given = sha256(key);
    let found: TenantRuntime | undefined;
    for (const t of byKeyHash) if (timingSafeEqual(t.hash, given)) found = t.rt;
    return found;
  };
  const server: Server = createLocalGateway({
    tenantByApiKey,
    tenantById: (id) => byId.get(id),
    log,
    maxInFlightPredicts: options.maxInFlightPredicts,
    dashboard: options.dashboard === false ? undefined : retryingLazy(async () => (await import('../../dashboard/build.js')).buildDashboard()),
  });
  const url = await listen(server, options.port ?? 8080, options.host ?? '127.0.0.1');

  const runtimesByBucketDir = new Map<string, TenantRuntime>();
  let shuttingDown = false;
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  const warmUps = createWarmUps(log, () => shuttingDown);
  const recordEndUntilDone = createJobEndRecorder({
    log,
    retryMs: options.recordRetryMs ?? 2000,
    later,
    stopped: () => shuttingDown,
    onRecorded: () => {
      if (runner.idle) void collectAllGarbage();
    },
  });
  const runner = new ChildProcessJobRunner({
    ...options.runner,
    onOutput: options.runner?.onOutput ?? ((id, line) => passJobLine(log, id, line)),
    onExit: (d, request) => {
      const rt = runtimesByBucketDir.get(request.env.BUCKET_DIR ?? '');
      // Jobs stopped because the platform stops are not failures: they stay
      // unfinished and resume on the next start.
      if (!rt || shuttingDown) return;
      recordEndUntilDone(rt.store, d);
      warmUps.start(rt, d.jobId);
    },
  });

  let collecting: Promise<void> | undefined;
  const collectAllGarbage = (): Promise<void> =>
    (collecting ??= (async () => {
      try {
        for (const t of tenants) {
          // Only while no job runs: a version being published has no metadata yet.
          if (!runner.idle || shuttingDown) return;
          const g = await collectGarbage(t.store);
          const swept = await t.store.sweep(TEMP_FILE_MAX_AGE_MS);
          if (g.objectsDeleted || swept.tempFiles) {
            log('cleaned', {
              tenant: t.id,
              incompleteVersions: g.incompleteVersions.length,
              unusedPreparedCopies: g.preparedCopies.length,
              temporaryFiles: swept.tempFiles,
              emptyFolders: swept.folders,
            });
          }
        }
      } catch (err) {
        log('cleaning up failed (will try again after the next job)', { error: err });
      } finally {
        collecting = undefined;
      }
    })());

  const tenants: TenantRuntime[] = [];
  // The first job (a resumed one, or the first upload's) starts in a process that has already loaded.
  runner.prepareStandby();
  for (const tenant of file.tenants) {
    const { rt, jobs } = createTenantRuntime(tenant, { dataDir, url, uploadSecret: file.uploadSecret, runner, options, log });
    const { store, bucketDir } = rt;
    runtimesByBucketDir.set(bucketDir, rt);
    tenants.push(rt);
    byKeyHash.push({ hash: sha256(tenant.apiKey), rt });
    byId.set(tenant.id, rt);
    // What a crash or a full disk left behind, before anything runs again.
    await store.sweep().catch((err: unknown) => log('could not sweep', { tenant: tenant.id, bucketDir, error: err }));
    await collectGarbage(store).catch((err: unknown) => log('could not clean', { tenant: tenant.id, bucketDir, error: err }));
    await resumeUnfinishedJobs(rt, jobs, log);
  }

  const defaultTenant = tenants.find((t) => t.tenant.default) ?? tenants[0];
  return {
    url,
    dataDir,
    tenants,
    defaultTenant,
    runner,
    async whenIdle() {
      // A queue message can start a job, and a job's end can be followed by more
      // messages: wait until both are quiet at the same moment.
      for (;;) {
        await Promise.all(tenants.map((t) => t.queue.whenIdle()));
        await runner.whenIdle();
        await warmUps.settled();
        await new Promise((r) => setTimeout(r, 100));
        if (tenants.every((t) => t.queue.idle) && runner.idle && warmUps.idle) return;
      }
    },
    collectGarbage: collectAllGarbage,
    async stop() {
      shuttingDown = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await collecting;
      for (const t of tenants) t.queue.stop();
      await runner.stopAll();
      await warmUps.settled();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections?.();
    },
  };
}

interface TenantContext {
  dataDir: string;
  url: string;
  uploadSecret: string;
  runner: ChildProcessJobRunner;
  options: PlatformOptions;
  log: LogFn;
}

/** One tenant of the embedded default: its folder bucket, queue, preprocess consumer and API handlers. */
function createTenantRuntime(tenant: Tenant, { dataDir, url, uploadSecret, runner, options, log }: TenantContext): { rt: TenantRuntime; jobs: JobRunner } {
  const bucketDir = path.join(dataDir, 'buckets', tenant.id);
  const bucketName = `tl-${tenant.id}`;
  // Its consumer is built below, once the store and the job runner it needs exist.
  const queue: InProcessQueue = new InProcessQueue({
    consumer: (event) => preprocess(event, {} as never),
    retryDelayMs: options.retryDelayMs,
    queueArn: `arn:aws:sqs:local:000000000000:${bucketName}-ingest`,
    onDeadLetter: (record, reason) => log('dead letter', { tenant: tenant.id, body: record.body.slice(0, 200), reason }),
  });
  const store = new FsObjectStore({
    root: bucketDir,
    faultFile: options.faultFile,
    presign: { baseUrl: url, secret: uploadSecret, bucket: tenant.id },
    // The S3 notification filter of the cloud stack: prefix datasets/, suffix train.json.
    notifyFilter: (key) => TRAIN_JSON.test(key),
    onObjectCreated: (info) => void queue.send(s3EventBody(bucketName, info.key, info.size, info.etag)),
  });
  const jobs: JobRunner = {
    submit: (req) =>
      runner.submit({
        ...req,
        env: {
          ...req.env,
          STORE_KIND: 'local',
          BUCKET_DIR: bucketDir,
          JOB_RUNNER: 'local',
          TL_TENANT: tenant.id,
          // No CloudWatch to read EMF here: the job's metrics stay off unless asked for.
          POWERTOOLS_METRICS_DISABLED: process.env.POWERTOOLS_METRICS_DISABLED ?? 'true',
          // One JSON object per line, which passJobLine reads; it indents them itself in dev mode.
          POWERTOOLS_DEV: '',
          ...(options.faultFile ? { TL_FS_FAULT_FILE: options.faultFile } : {}),
        },
      }),
    describe: (id) => runner.describe(id),
    cancel: (id, reason) => runner.cancel(id, reason),
  };
  const preprocess = createPreprocessHandler({ store, jobs });
  const models = createModelCache(store, { capacity: options.modelCacheSize ?? 4 });
  const rt: TenantRuntime = {
    id: tenant.id,
    tenant,
    store,
    queue,
    bucketDir,
    models,
    predict: createPredictHandler({ store, models }, (m, e) => log(m, { tenant: tenant.id, error: e instanceof Error ? e : new Error(String(e)) })),
    uploads: createUploadsHandler({ store }),
    verifyUpload: (key, expires, sig) => verifyLocalUploadSignature(uploadSecret, tenant.id, key, expires, sig),
    storeUpload: async (key, body, maxBytes) => {
      try {
        await store.putStream(key, body, maxBytes);
      } catch (err) {
        if (err instanceof ObjectTooLargeError) throw new PayloadTooLargeError(err.limit);
        throw err;
      }
    },
  };
  return { rt, jobs };
}

/** Warm-ups of published models in flight: `stop()` and `whenIdle()` wait for them; none logs after stop. */
function createWarmUps(log: LogFn, stopped: () => boolean) {
  const running = new Set<Promise<void>>();
  return {
    start(rt: TenantRuntime, jobId: string): void {
      const warm: Promise<void> = warmServedModel(rt, jobId, (m, a) => {
        if (!stopped()) log(m, a);
      }).finally(() => running.delete(warm));
      running.add(warm);
    },
    settled: () => Promise.all(running).then(() => undefined),
    get idle() {
      return running.size === 0;
    },
  };
}

/**
 * Once a job has published, the model's served version is loaded and answers one blank
 * prediction, so its first caller does not wait for the engine, the frozen base's session
 * and the heads to load (about 1.2 s on a fresh `npm start`, 2 cores). A failure here only
 * means the first predict loads it, as before.
 */
async function warmServedModel(rt: TenantRuntime, jobId: string, log: LogFn): Promise<void> {
  const status = await readJobStatus(rt.store, jobId).catch(() => undefined);
  if (status?.state !== 'succeeded') return;
  const started = performance.now();
  try {
    const meta = await warmModel(rt, status.model);
    log('model warmed', { tenant: rt.id, model: meta.model, version: meta.version, ms: Math.round(performance.now() - started) });
  } catch (err) {
    log('could not warm the model; its first predict loads it', { tenant: rt.id, model: status.model, error: err });
  }
}

/** Loads a model's served version into the tenant's predict cache (one blank prediction). */
export async function warmModel(rt: TenantRuntime, model: string): Promise<ModelMetadata> {
  // Through the cache, so the first predict reads only the alias, as every later one does.
  const meta = await resolveModel(rt.store, model, undefined, { readVersion: (m, v) => rt.models.readVersion(m, v) });
  await rt.models.warm(meta);
  return meta;
}

/**
 * A job that dies without recording its end (killed, out of memory, a full disk)
 * is marked failed here, as the job-events function does for AWS Batch. When even
 * that write fails (the disk is still full), it is tried again until it lands, so
 * no job stays "running" with no process behind it.
 */
function createJobEndRecorder(o: { log: LogFn; retryMs: number; later: (ms: number, fn: () => void) => void; stopped: () => boolean; onRecorded: () => void }) {
  const recordEnd = async (store: ObjectStore, d: JobDescription): Promise<void> => {
    const status = await readJobStatus(store, d.jobId);
    if (!status || TERMINAL_STATES.includes(status.state) || (status.runnerJobId && status.runnerJobId !== d.runnerJobId)) return;
    const cancelled = d.state === 'cancelled';
    await updateJobStatus(store, d.jobId, {
      state: cancelled ? 'cancelled' : 'failed',
      error: { code: cancelled ? 'JOB_CANCELLED' : jobEndCode(d.reason), message: `training process ended without finishing: ${d.reason ?? d.state}` },
    });
  };
  const recordEndUntilDone = (store: ObjectStore, d: JobDescription, attempt = 0): void => {
    if (o.stopped()) return;
    recordEnd(store, d).then(o.onRecorded, (err: unknown) => {
      if (attempt === 0) o.log(`could not record the end of the job; retrying every ${o.retryMs} ms`, { jobId: d.jobId, error: err });
      o.later(o.retryMs, () => recordEndUntilDone(store, d, attempt + 1));
    });
  };
  return recordEndUntilDone;
}

/**
 * Jobs that were queued or running when the platform last stopped are started
 * again, so nothing submitted is lost; a training job resumes from its checkpoint.
 */
async function resumeUnfinishedJobs(rt: TenantRuntime, jobs: JobRunner, log: LogFn): Promise<void> {
  const keys = (await rt.store.list('jobs/')).filter((o) => /^jobs\/[^/]+\/status\.json$/.test(o.key));
  for (const { key } of keys) {
    const jobId = key.split('/')[1];
    const status = await readJobStatus(rt.store, jobId).catch(() => undefined);
    if (!status || TERMINAL_STATES.includes(status.state)) continue;
    if (!status.runnerJobId) {
      // Preprocessing did not finish: deliver the dataset's train.json event again.
      const specKey = `datasets/${status.dataset}/train.json`;
      const spec = (await rt.store.list(specKey)).find((o) => o.key === specKey);
      if (spec) await rt.queue.send(s3EventBody(`tl-${rt.id}`, specKey, spec.size, spec.etag));
      continue;
    }
    const prepared = `prepared/${status.dataset}/${status.datasetHash}`;
    const { runnerJobId } = await jobs.submit({ jobId, env: { TL_JOB_ID: jobId, TL_PREPARED_PREFIX: prepared } });
    await updateJobStatus(rt.store, jobId, { state: 'submitted', runnerJobId });
    log('resumed a job left unfinished by the last run', { tenant: rt.id, jobId });
  }
}

/**
 * A line the training job printed. Its JSON log lines (tenant, jobId, model on each)
 * go out as they are, indented when Powertools' dev mode is on, so the platform's
 * output is one stream of the same structure; anything else (a crash's stack) is
 * wrapped in a line of the platform's own.
 */
export function passJobLine(log: LogFn, jobId: string, line: string, write: (text: string) => void = (t) => void process.stdout.write(t)): void {
  if (!line.trim()) return;
  if (line.startsWith('{')) {
    try {
      const entry: unknown = JSON.parse(line);
      const pretty = process.env.POWERTOOLS_DEV === 'true' || process.env.POWERTOOLS_DEV === '1';
      write(`${pretty ? JSON.stringify(entry, null, 4) : line}\n`);
      return;
    } catch {
      // Not JSON after all: logged as text below.
    }
  }
  log('job output', { jobId, line });
}
