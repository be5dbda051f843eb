import type { ObjectStore } from '../../shared/ports/object-store.js';
import { loadEnv, PlatformEnvSchema } from '../../shared/schemas/env.js';
import { createStore } from '../../shared/wiring.js';
import { recordJobStateChange, type JobEventOutcome } from './core.js';
import { BatchJobStateChangeEventSchema } from './schema.js';

let deps: Promise<{ store: ObjectStore }> | undefined;

/** Only the bucket: this function never submits jobs, so it needs no job runner settings. */
async function createJobEventDeps(): Promise<{ store: ObjectStore }> {
  return { store: await createStore(loadEnv(PlatformEnvSchema)) };
}

/**
 * EventBridge target for "Batch Job State Change" events of the tenant's job
 * queue. The environment is validated on the first event (cold start), not at
 * import, so tests can pass deps directly to the core.
 */
export async function handler(event: unknown): Promise<JobEventOutcome> {
  const parsed = BatchJobStateChangeEventSchema.parse(event);
  deps ??= createJobEventDeps();
  const outcome = await recordJobStateChange(parsed.detail, await deps);
  console.log(JSON.stringify({ msg: 'batch job state change', batchJobId: parsed.detail.jobId, ...outcome }));
  return outcome;
}
