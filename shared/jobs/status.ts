import { getJsonIfExists, putJson, type ObjectStore } from '../ports/object-store.js';
import type { JobDescription, JobRunner } from '../ports/job-runner.js';
import { JobStatusSchema, MAX_JOB_HISTORY, TERMINAL_STATES, type JobStatus } from '../schemas/job.js';
import type { ErrorBody, ErrorCode } from '../schemas/errors.js';

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

/**
 * The history with one more epoch (`entry.epoch`, 1-based). Entries of that epoch or
 * later are dropped first (a resumed job repeats them); past `max` entries every
 * second older one goes, keeping the first and the newest, so the curve keeps its
 * shape over the whole run in bounded space.
 */
export function appendEpoch(
  history: ReadonlyArray<Record<string, number>>,
  entry: Record<string, number>,
  max = MAX_JOB_HISTORY,
): Array<Record<string, number>> {
  let next = [...history.filter((h) => (h.epoch ?? 0) < (entry.epoch ?? Number.POSITIVE_INFINITY)), entry];
  while (next.length > max) next = next.filter((_, i) => i % 2 === 0 || i === next.length - 1);
  return next;
}

/** Records one training epoch in a job's status: its figures join `history`, `patch` is merged as in updateJobStatus. */
export async function recordEpoch(store: ObjectStore, jobId: string, entry: Record<string, number>, patch: Partial<JobStatus> = {}): Promise<JobStatus> {
  const current = await readJobStatus(store, jobId);
  return updateJobStatus(store, jobId, { ...patch, history: appendEpoch(current?.history ?? [], entry) });
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

/**
 * Makes a job's recorded state agree with its runner's. A job recorded as queued
 * or running whose runner has ended it, or has no record of it (a process gone
 * with a restart, a disk that was full when the job tried to record its end), is
 * failed with a code here, so a retry can start it again. When the runner cannot
 * be asked, the status is left as it is. Returns the status after reconciling.
 */
export async function reconcileJobStatus(store: ObjectStore, runner: Pick<JobRunner, 'describe'>, status: JobStatus): Promise<JobStatus> {
  if (TERMINAL_STATES.includes(status.state) || !status.runnerJobId) return status;
  let d: JobDescription | undefined;
  try {
    d = await runner.describe(status.runnerJobId);
  } catch {
    return status;
  }
  if (d && !TERMINAL_STATES.includes(d.state)) return status;
  const error: ErrorBody = !d
    ? {
        code: 'JOB_ORPHANED',
        message: `the job runner has no record of ${status.runnerJobId}: its process is gone without recording an end; upload train.json again to retry`,
      }
    : d.state === 'cancelled'
      ? { code: 'JOB_CANCELLED', message: `the job was cancelled${d.reason ? `: ${d.reason}` : ''}` }
      : {
          code: d.state === 'succeeded' ? 'JOB_ORPHANED' : jobEndCode(d.reason),
          message: `the training process ended (${d.state}${d.reason ? `: ${d.reason}` : ''}) without recording its result; upload train.json again to retry`,
        };
  return updateJobStatus(store, status.jobId, { state: d?.state === 'cancelled' ? 'cancelled' : 'failed', error });
}

/** The code for a job process that died: a storage fault when its last words say so, else a crash. */
export function jobEndCode(reason: string | undefined): ErrorCode {
  if (reason && /\bENOSPC\b|\bEDQUOT\b|no space left/i.test(reason)) return 'INSUFFICIENT_STORAGE';
  if (reason && /\bEROFS\b|read-only file system/i.test(reason)) return 'STORAGE_UNAVAILABLE';
  return 'JOB_CRASHED';
}
