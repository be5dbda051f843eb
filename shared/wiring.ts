import { FsObjectStore } from './adapters/local/fs-object-store.js';
import type { JobRunner } from './ports/job-runner.js';
import type { ObjectStore } from './ports/object-store.js';
import { loadEnv, PlatformEnvSchema, type PlatformEnv } from './schemas/env.js';
import { configureEngine, engineConfigFromEnv } from './ml/onnx/runtime.js';
import { setTfLog } from './tf/loader.js';

/**
 * The one place that turns an environment into adapters. Handlers call it once
 * at cold start (or receive deps directly in tests). The AWS adapters are
 * imported lazily so the embedded default never loads the AWS SDK.
 */
export interface Deps {
  env: PlatformEnv;
  store: ObjectStore;
  jobs: JobRunner;
}

export async function createStore(env: PlatformEnv): Promise<ObjectStore> {
  if (env.STORE_KIND === 's3') {
    const aws = await import('./adapters/aws/index.js');
    return aws.createS3ObjectStore(env);
  }
  return new FsObjectStore({ root: env.BUCKET_DIR!, faultFile: env.TL_FS_FAULT_FILE });
}

export async function createJobRunner(env: PlatformEnv): Promise<JobRunner> {
  if (env.JOB_RUNNER === 'batch') {
    const aws = await import('./adapters/aws/index.js');
    return aws.createBatchJobRunner(env);
  }
  const { ChildProcessJobRunner } = await import('./adapters/local/child-process-runner.js');
  return new ChildProcessJobRunner();
}

/**
 * Chooses how the frozen part of models runs in this process (TL_ENGINE, TL_ONNX_THREADS); at cold start.
 * `log` receives the engine chosen (ONNX Runtime or TensorFlow.js, and which backend) and any fallback.
 */
export function configureFrozenEngine(env: PlatformEnv, log?: (line: string) => void): void {
  configureEngine({ ...engineConfigFromEnv(env), log });
  if (log) setTfLog(log);
}

export async function createDeps(raw: NodeJS.ProcessEnv = process.env): Promise<Deps> {
  const env = loadEnv(PlatformEnvSchema, raw);
  configureFrozenEngine(env);
  return { env, store: await createStore(env), jobs: await createJobRunner(env) };
}
