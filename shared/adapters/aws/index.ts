import type { BatchClient } from '@aws-sdk/client-batch';
import type { S3Client } from '@aws-sdk/client-s3';
import { ConfigError, type PlatformEnv } from '../../schemas/env.js';
import { BatchJobRunner } from './batch-job-runner.js';
import { S3ObjectStore } from './s3-object-store.js';

export { S3ObjectStore, type S3ObjectStoreOptions } from './s3-object-store.js';
export { BatchJobRunner, batchJobName, jobStateOf, reasonOf, type BatchJobRunnerOptions } from './batch-job-runner.js';

/** The tenant bucket named by `BUCKET_NAME`. */
export function createS3ObjectStore(env: PlatformEnv, client?: S3Client): S3ObjectStore {
  if (!env.BUCKET_NAME) throw new ConfigError('BUCKET_NAME is required when STORE_KIND=s3');
  return new S3ObjectStore({ bucket: env.BUCKET_NAME, client });
}

/** The Batch queue and job definition named by `JOB_QUEUE` and `JOB_DEFINITION`. */
export function createBatchJobRunner(env: PlatformEnv, client?: BatchClient): BatchJobRunner {
  if (!env.JOB_QUEUE || !env.JOB_DEFINITION) throw new ConfigError('JOB_QUEUE and JOB_DEFINITION are required when JOB_RUNNER=batch');
  return new BatchJobRunner({ jobQueue: env.JOB_QUEUE, jobDefinition: env.JOB_DEFINITION, client });
}
