/**
 * Entry point of the training job. The same file runs in the AWS Batch container
 * and as the embedded default's child process: both pass the platform environment
 * plus TL_JOB_ID and TL_PREPARED_PREFIX. Progress goes to stderr; the exit code
 * says whether the job succeeded (its status object says why not).
 */
import { loadEnv, PlatformEnvSchema, TrainJobEnvSchema } from '../../shared/schemas/env.js';
import { configureFrozenEngine, createStore } from '../../shared/wiring.js';
import { runTrainingJob } from './core.js';

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const log = (line: string) => process.stderr.write(`[train] ${line}\n`);
  try {
    const platform = loadEnv(PlatformEnvSchema, env);
    const job = loadEnv(TrainJobEnvSchema, env);
    configureFrozenEngine(platform);
    const store = await createStore(platform);
    const result = await runTrainingJob({ jobId: job.TL_JOB_ID, preparedPrefix: job.TL_PREPARED_PREFIX }, { store, log });
    return result.ok ? 0 : 1;
  } catch (err) {
    // Only reached when the environment is wrong or the status cannot be written.
    log(`fatal: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  () => {
    process.exitCode = 1;
  },
);
