/**
 * Entry point of the training job. The same file runs in the AWS Batch container
 * and as the embedded default's child process: both pass the platform environment
 * plus TL_JOB_ID and TL_PREPARED_PREFIX. It logs JSON lines with Powertools
 * (tenant, jobId, model and, once published, version on every line) and writes its
 * metrics in EMF: the job's duration and each stage's, and the job's end by error
 * code. The exit code says whether the job succeeded (its status object says why not).
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { readJobStatus } from '../../shared/jobs/status.js';
import { createObservability, type Observability } from '../../shared/observability.js';
import { receiveEnvironment, STANDBY_FLAG } from '../../shared/adapters/local/standby.js';
import { loadEnv, PlatformEnvSchema, TrainJobEnvSchema } from '../../shared/schemas/env.js';
import { configureFrozenEngine, createStore } from '../../shared/wiring.js';
import { runTrainingJob, type TrainJobResult } from './core.js';

/** EMF metrics of one job: `JobDuration`, `StageDuration` per stage, and `JobsSucceeded` or `JobsFailed` per error code. */
function recordJobMetrics({ metrics }: Observability, result: TrainJobResult): void {
  const { totalMs, ...stages } = result.timings ?? {};
  if (totalMs !== undefined) metrics.addMetric('JobDuration', MetricUnit.Milliseconds, totalMs);
  for (const [name, ms] of Object.entries(stages)) {
    metrics
      .singleMetric()
      .addDimensions({ stage: name.replace(/Ms$/, '') })
      .addMetric('StageDuration', MetricUnit.Milliseconds, ms);
  }
  if (result.ok) metrics.addMetric('JobsSucceeded', MetricUnit.Count, 1);
  else metrics.singleMetric().addDimensions({ code: result.error.code }).addMetric('JobsFailed', MetricUnit.Count, 1);
  metrics.publishStoredMetrics();
}

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const observability = createObservability('train', env);
  const { logger } = observability;
  try {
    const platform = loadEnv(PlatformEnvSchema, env);
    const job = loadEnv(TrainJobEnvSchema, env);
    logger.appendKeys({ jobId: job.TL_JOB_ID });
    configureFrozenEngine(platform, (line) => logger.info(line));
    const store = await createStore(platform);
    const model = (await readJobStatus(store, job.TL_JOB_ID).catch(() => undefined))?.model;
    if (model) logger.appendKeys({ model });
    const result = await runTrainingJob({ jobId: job.TL_JOB_ID, preparedPrefix: job.TL_PREPARED_PREFIX }, { store, log: (line) => logger.info(line) });
    if (result.ok) logger.appendKeys({ model: result.model, version: result.version });
    logger.info(result.ok ? 'job succeeded' : 'job failed', result.ok ? { timings: result.timings } : { code: result.error.code, timings: result.timings });
    recordJobMetrics(observability, result);
    return result.ok ? 0 : 1;
  } catch (err) {
    // Only reached when the environment is wrong or the status cannot be written.
    logger.error('fatal', err instanceof Error ? err : new Error(String(err)));
    return 1;
  }
}

/** As the Batch container runs it, or (with STANDBY_FLAG) as a standby that waits for its job's environment on stdin. */
async function entry(): Promise<number> {
  if (process.argv.includes(STANDBY_FLAG) && !(await receiveEnvironment())) return 0;
  return main();
}

entry().then(
  (code) => {
    process.exitCode = code;
  },
  () => {
    process.exitCode = 1;
  },
);
