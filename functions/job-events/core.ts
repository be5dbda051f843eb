import type { ErrorBody } from '../../shared/schemas/errors.js';
import { readJobStatus, updateJobStatus } from '../../shared/jobs/status.js';
import type { ObjectStore } from '../../shared/ports/object-store.js';
import { TERMINAL_STATES } from '../../shared/schemas/job.js';
import type { BatchJobStateDetail } from './schema.js';

export interface JobEventDeps {
  store: ObjectStore;
}

export type JobEventOutcome = { action: 'recorded'; jobId: string; code: string; message: string } | { action: 'ignored'; jobId: string; why: string };

/**
 * Why a Batch job failed, in words a user of `tl status` can act on. Batch's
 * own texts are kept at the end so nothing is lost.
 */
export function describeFailure(detail: BatchJobStateDetail): ErrorBody {
  const last = detail.attempts.at(-1);
  const reason = detail.statusReason ?? last?.statusReason ?? last?.container?.reason ?? detail.container?.reason ?? 'no reason given';
  const containerReason = last?.container?.reason ?? detail.container?.reason;
  const exitCode = last?.container?.exitCode ?? detail.container?.exitCode;
  const tries = detail.attempts.length;
  const after = `after ${tries} attempt${tries === 1 ? '' : 's'}`;
  const spot = detail.attempts.filter((a) => /^Host EC2/i.test(a.statusReason ?? '')).length;

  // The job queue's jobStateTimeLimitActions cancelled a job that waited in RUNNABLE too long.
  const stuck = /JobStateTimeLimit action due to reason: (\S+)/i.exec(reason)?.[1];
  if (stuck)
    return {
      code: 'NO_CAPACITY',
      message: /INSUFFICIENT_INSTANCE_CAPACITY/.test(stuck)
        ? `no GPU capacity came within the queue's RUNNABLE time limit, so AWS Batch cancelled the job (${stuck}); upload train.json again later, or deploy with capacity "spot-then-on-demand"`
        : `no compute environment can run this job (${stuck}): raise maxvCpus or the instance types of the tenant, then upload train.json again`,
    };
  if (/^Host EC2/i.test(reason) || (tries > 0 && spot === tries))
    return {
      code: 'SPOT_RECLAIMED',
      message: `training lost its Spot instance ${spot || tries} time(s) and ran out of retries (${reason}); it will run again on the next upload of train.json, or deploy with on-demand instances`,
    };
  if (/attempt duration exceeded timeout/i.test(reason)) return { code: 'TIMEOUT', message: `training ran longer than the job timeout ${after} (${reason})` };
  if (
    /CannotPullContainer|CannotStartContainer|CannotCreateContainer|ResourceInitializationError|CannotInspectContainer/i.test(
      `${reason} ${containerReason ?? ''}`,
    )
  )
    return { code: 'CONTAINER_NEVER_STARTED', message: `the training container never started (${containerReason ?? reason})` };
  if (/OutOfMemory/i.test(`${reason} ${containerReason ?? ''}`))
    return { code: 'OUT_OF_MEMORY', message: `training ran out of memory ${after} (${containerReason ?? reason})` };
  if (exitCode != null && exitCode !== 0)
    return { code: 'JOB_EXITED', message: `the training container exited with code ${exitCode} ${after} without recording the error itself (${reason})` };
  return { code: 'BATCH_JOB_FAILED', message: `AWS Batch reported the training job failed ${after}: ${reason}` };
}

/**
 * Records a Batch failure in `jobs/<id>/status.json` when the job could not
 * (it never started, lost its Spot host for the last time, or was killed by a
 * timeout). A job that already wrote a terminal state keeps its own account,
 * which is more precise than Batch's.
 */
export async function recordJobStateChange(detail: BatchJobStateDetail, deps: JobEventDeps): Promise<JobEventOutcome> {
  // The Batch job name is the platform job id (see batchJobName).
  const jobId = detail.jobName;
  if (detail.status !== 'FAILED') return { action: 'ignored', jobId, why: `status ${detail.status}` };
  const status = await readJobStatus(deps.store, jobId);
  if (!status) return { action: 'ignored', jobId, why: 'no status.json: not a platform job' };
  if (TERMINAL_STATES.includes(status.state)) return { action: 'ignored', jobId, why: `already ${status.state}` };
  // A failed job of the same name is not reused, so a later submission may own
  // the status now; an event about the earlier job must not overwrite it.
  if (status.runnerJobId && status.runnerJobId !== detail.jobId) return { action: 'ignored', jobId, why: `status belongs to Batch job ${status.runnerJobId}` };
  const error = describeFailure(detail);
  await updateJobStatus(deps.store, jobId, { state: 'failed', error, runnerJobId: detail.jobId });
  return { action: 'recorded', jobId, ...error };
}
