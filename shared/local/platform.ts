import path from 'node:path';
import type { Server } from 'node:http';
import { FsObjectStore, verifyLocalUploadSignature } from '../adapters/local/fs-object-store.js';
import { ChildProcessJobRunner, type ChildProcessJobRunnerOptions } from '../adapters/local/child-process-runner.js';
import type { JobRunner } from '../ports/job-runner.js';
import type { ObjectStore } from '../ports/object-store.js';
import { TERMINAL_STATES } from '../schemas/job.js';
import { readJobStatus, updateJobStatus } from '../jobs/status.js';
import { createHandler as createPredictHandler } from '../../functions/predict/handler.js';
import { createModelCache } from '../../functions/predict/model-cache.js';
import { createHandler as createUploadsHandler } from '../../functions/uploads/handler.js';
import { createHandler as createPreprocessHandler } from '../../functions/preprocess/handler.js';
import { InProcessQueue, s3EventBody } from './queue.js';
import { createLocalGateway, listen, type LocalGatewayTenant } from './server.js';
import { loadOrCreateTenants, type Tenant } from './tenants.js';

export interface PlatformOptions {
  /** @default ".data" */
  dataDir: string;
  /** 0 picks a free port. @default 8080 */
  port?: number;
  /** @default "127.0.0.1" */
  host?: string;
  log?: (line: string) => void;
  /** Overrides for the job runner (tests run jobs with other commands or output sinks). */
  runner?: ChildProcessJobRunnerOptions;
  /** Models kept loaded per tenant. @default 4 */
  modelCacheSize?: number;
  /** Delay before a failed queue message is retried. @default 2000 */
  retryDelayMs?: number;
}

export interface TenantRuntime extends LocalGatewayTenant {
  tenant: Tenant;
  store: ObjectStore;
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
  stop(): Promise<void>;
}

const TRAIN_JSON = /^datasets\/[^/]+\/train\.json$/;

/**
 * Starts the embedded default: per tenant a folder bucket, an in-process queue
 * fed by "object created" events for train.json, the preprocess handler as its
 * consumer, and the predict and uploads handlers behind a local API gateway;
 * training jobs run as child processes.
 */
export async function startPlatform(options: PlatformOptions): Promise<Platform> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const dataDir = path.resolve(options.dataDir);
  const file = await loadOrCreateTenants(dataDir);
  const byKey = new Map<string, TenantRuntime>();
  const byId = new Map<string, TenantRuntime>();
  const server: Server = createLocalGateway({ tenantByApiKey: (k) => byKey.get(k), tenantById: (id) => byId.get(id), log });
  const url = await listen(server, options.port ?? 8080, options.host ?? '127.0.0.1');

  const storesByBucketDir = new Map<string, ObjectStore>();
  let shuttingDown = false;
  const runner = new ChildProcessJobRunner({
    ...options.runner,
    onOutput: options.runner?.onOutput ?? ((id, line) => log(`[${id}] ${line}`)),
    // A job that dies without recording its end (killed, out of memory) is marked
    // failed here, as the job-events function does for AWS Batch.
    onExit: (d, request) => {
      const store = storesByBucketDir.get(request.env.BUCKET_DIR ?? '');
      // Jobs stopped because the platform stops are not failures: they stay
      // unfinished and resume on the next start.
      if (!store || shuttingDown) return;
      void (async () => {
        const status = await readJobStatus(store, d.jobId);
        if (status && !TERMINAL_STATES.includes(status.state)) {
          await updateJobStatus(store, d.jobId, {
            state: d.state === 'cancelled' ? 'cancelled' : 'failed',
            error: { code: d.state === 'cancelled' ? 'JOB_CANCELLED' : 'JOB_CRASHED', message: `training process ended without finishing: ${d.reason ?? d.state}` },
          });
        }
      })().catch((err) => log(`could not record the end of job ${d.jobId}: ${(err as Error).message}`));
    },
  });

  const tenants: TenantRuntime[] = [];
  for (const tenant of file.tenants) {
    const bucketDir = path.join(dataDir, 'buckets', tenant.id);
    const bucketName = `tl-${tenant.id}`;
    let queue!: InProcessQueue;
    const store = new FsObjectStore({
      root: bucketDir,
      presign: { baseUrl: url, secret: file.uploadSecret, bucket: tenant.id },
      // The S3 notification filter of the cloud stack: prefix datasets/, suffix train.json.
      onObjectCreated: (info) => {
        if (TRAIN_JSON.test(info.key)) void queue.send(s3EventBody(bucketName, info.key, info.size, info.etag));
      },
    });
    storesByBucketDir.set(bucketDir, store);
    const jobs: JobRunner = {
      submit: (req) => runner.submit({ ...req, env: { ...req.env, STORE_KIND: 'local', BUCKET_DIR: bucketDir, JOB_RUNNER: 'local' } }),
      describe: (id) => runner.describe(id),
      cancel: (id, reason) => runner.cancel(id, reason),
    };
    const preprocess = createPreprocessHandler({ store, jobs });
    queue = new InProcessQueue({
      consumer: (event) => preprocess(event, {} as never),
      retryDelayMs: options.retryDelayMs,
      queueArn: `arn:aws:sqs:local:000000000000:${bucketName}-ingest`,
      onDeadLetter: (record, reason) => log(`dead letter (${tenant.id}): ${record.body.slice(0, 200)}: ${reason}`),
    });
    const rt: TenantRuntime = {
      id: tenant.id,
      tenant,
      store,
      queue,
      bucketDir,
      predict: createPredictHandler({ store, models: createModelCache(store, { capacity: options.modelCacheSize ?? 4 }) }, (m, e) => log(`${m}: ${(e as Error)?.stack ?? e}`)),
      uploads: createUploadsHandler({ store }),
      acceptUpload: async (key, expires, sig, body) => {
        if (!verifyLocalUploadSignature(file.uploadSecret, tenant.id, key, expires, sig)) return false;
        await store.put(key, body);
        return true;
      },
    };
    tenants.push(rt);
    byKey.set(tenant.apiKey, rt);
    byId.set(tenant.id, rt);
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
        await new Promise((r) => setTimeout(r, 100));
        if (tenants.every((t) => t.queue.idle) && runner.idle) return;
      }
    },
    async stop() {
      shuttingDown = true;
      for (const t of tenants) t.queue.stop();
      await runner.stopAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections?.();
    },
  };
}

/**
 * Jobs that were queued or running when the platform last stopped are started
 * again, so nothing submitted is lost; a training job resumes from its checkpoint.
 */
async function resumeUnfinishedJobs(rt: TenantRuntime, jobs: JobRunner, log: (line: string) => void): Promise<void> {
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
    log(`resumed job ${jobId} (tenant ${rt.id}) left unfinished by the last run`);
  }
}
