import { getJsonIfExists, putJson, type ObjectStore } from '../ports/object-store.js';
import { JobStatusSchema, type JobStatus } from '../schemas/job.js';

export const jobStatusKey = (jobId: string) => `jobs/${jobId}/status.json`;

export async function readJobStatus(store: ObjectStore, jobId: string): Promise<JobStatus | undefined> {
  const raw = await getJsonIfExists(store, jobStatusKey(jobId));
  return raw === undefined ? undefined : JobStatusSchema.parse(raw);
}

/** Merges a patch into a job's status and writes it back, stamping updatedAt. */
export async function updateJobStatus(store: ObjectStore, jobId: string, patch: Partial<JobStatus>): Promise<JobStatus> {
  const current = await readJobStatus(store, jobId);
  if (!current) throw new Error(`job ${jobId} has no status`);
  const next = JobStatusSchema.parse({ ...current, ...patch, metrics: { ...current.metrics, ...(patch.metrics ?? {}) }, updatedAt: new Date().toISOString() });
  await putJson(store, jobStatusKey(jobId), next);
  return next;
}

/** `jobs/by-model/<model>.json`: `{ "jobId" }` of the model's latest job, for `tl status <model>`. */
export const modelJobPointerKey = (model: string) => `jobs/by-model/${model}.json`;

/** The latest job of a model, if it has one. */
export async function readLatestJobOfModel(store: ObjectStore, model: string): Promise<JobStatus | undefined> {
  const pointer = await getJsonIfExists<{ jobId?: string }>(store, modelJobPointerKey(model));
  return pointer?.jobId ? readJobStatus(store, pointer.jobId) : undefined;
}

/** Deterministic job id: the same model and dataset content always give the same id. */
export function jobIdFor(model: string, datasetHash: string): string {
  return `train-${model}-${datasetHash.slice(0, 16)}`;
}
