import type { ObjectStore } from '../../shared/ports/object-store.js';
import { loadEnv, PlatformEnvSchema } from '../../shared/schemas/env.js';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { retryingLazy } from '../../shared/lazy.js';
import { createObservability, type Observability } from '../../shared/observability.js';
import { createStore } from '../../shared/wiring.js';
import { recordJobStateChange, type JobEventOutcome } from './core.js';
import { BatchJobStateChangeEventSchema } from './schema.js';

/** Only the bucket: this function never submits jobs, so it needs no job runner settings. */
async function createJobEventDeps(): Promise<{ store: ObjectStore }> {
  return { store: await createStore(loadEnv(PlatformEnvSchema)) };
}

let observability: Observability | undefined;

/** Built on the first event, and again on the next one if that failed. */
const deps = retryingLazy(createJobEventDeps);

/**
 * EventBridge target for "Batch Job State Change" events of the tenant's job
 * queue. The environment is validated on the first event (cold start), not at
 * import, so tests can pass deps directly to the core.
 */
export async function handler(event: unknown): Promise<JobEventOutcome> {
  const parsed = BatchJobStateChangeEventSchema.parse(event);
  const outcome = await recordJobStateChange(parsed.detail, await deps());
  observability ??= createObservability('job-events');
  const { logger, metrics } = observability;
  logger.info('batch job state change', { batchJobId: parsed.detail.jobId, ...outcome });
  // Failures by error code: SPOT_RECLAIMED, NO_CAPACITY, OUT_OF_MEMORY, ...
  if (outcome.action === 'recorded') metrics.addDimensions({ code: outcome.code }).addMetric('JobFailures', MetricUnit.Count, 1).publishStoredMetrics();
  return outcome;
}
