import { createHash } from 'node:crypto';
import {
  BatchClient,
  DescribeJobsCommand,
  ListJobsCommand,
  SubmitJobCommand,
  TerminateJobCommand,
  type JobDetail,
  type JobStatus as BatchJobStatus,
  type JobSummary,
} from '@aws-sdk/client-batch';
import type { JobDescription, JobRequest, JobRunner } from '../../ports/job-runner.js';
import type { JobState } from '../../schemas/job.js';

export interface BatchJobRunnerOptions {
  /** Name or ARN of the job queue. */
  jobQueue: string;
  /** Name, name:revision or ARN of the job definition. */
  jobDefinition: string;
  /** @default new BatchClient({}) */
  client?: BatchClient;
}

/** Batch job names: 1-128 letters, digits, hyphens and underscores, starting with a letter or digit. */
const BATCH_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/**
 * The Batch job name for a platform job id. Valid ids (all that `jobIdFor`
 * makes) are used as they are; anything else is cleaned and suffixed with a hash
 * of the original so the name stays deterministic and distinct.
 */
export function batchJobName(jobId: string): string {
  if (BATCH_NAME.test(jobId)) return jobId;
  const hash = createHash('sha256').update(jobId).digest('hex').slice(0, 12);
  const cleaned = jobId
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 128 - hash.length - 1);
  return `${cleaned || 'job'}-${hash}`;
}

const STATE_OF: Record<BatchJobStatus, JobState> = {
  SUBMITTED: 'submitted',
  PENDING: 'submitted',
  RUNNABLE: 'submitted',
  STARTING: 'submitted',
  RUNNING: 'running',
  SUCCEEDED: 'succeeded',
  FAILED: 'failed',
};

/** Maps a Batch status to the platform's job state. */
export function jobStateOf(status: BatchJobStatus): JobState {
  return STATE_OF[status];
}

/** The most telling reason Batch gives for a job's state, e.g. "Host EC2 (instance i-…) terminated." */
export function reasonOf(job: Pick<JobDetail, 'statusReason' | 'container' | 'attempts'>): string | undefined {
  const lastAttempt = job.attempts?.at(-1);
  return job.statusReason ?? job.container?.reason ?? lastAttempt?.statusReason ?? lastAttempt?.container?.reason;
}

/**
 * JobRunner on AWS Batch. The job name is the platform job id, so a message
 * delivered twice finds the job the first delivery submitted instead of
 * starting a second one.
 */
export class BatchJobRunner implements JobRunner {
  private readonly client: BatchClient;

  constructor(private readonly options: BatchJobRunnerOptions) {
    this.client = options.client ?? new BatchClient({});
  }

  async submit(request: JobRequest): Promise<{ runnerJobId: string }> {
    const jobName = batchJobName(request.jobId);
    const existing = await this.findReusable(jobName);
    if (existing?.jobId) return { runnerJobId: existing.jobId };
    const out = await this.client.send(
      new SubmitJobCommand({
        jobName,
        jobQueue: this.options.jobQueue,
        jobDefinition: this.options.jobDefinition,
        containerOverrides: { environment: Object.entries(request.env).map(([name, value]) => ({ name, value })) },
      }),
    );
    if (!out.jobId) throw new Error(`Batch returned no job id for ${jobName}`);
    return { runnerJobId: out.jobId };
  }

  /**
   * The newest job of that name in the queue that is queued, running or
   * succeeded. A failed one is not reused, so a redelivery after a failure
   * tries again. ListJobs with a filter returns every status (Batch keeps
   * finished jobs for about a week), which is what the check needs.
   */
  private async findReusable(jobName: string): Promise<JobSummary | undefined> {
    const found: JobSummary[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.client.send(
        new ListJobsCommand({ jobQueue: this.options.jobQueue, filters: [{ name: 'JOB_NAME', values: [jobName] }], nextToken }),
      );
      for (const s of page.jobSummaryList ?? []) if (s.jobName === jobName && s.status !== 'FAILED') found.push(s);
      nextToken = page.nextToken;
    } while (nextToken);
    return found.sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0))[0];
  }

  async describe(runnerJobId: string): Promise<JobDescription | undefined> {
    const out = await this.client.send(new DescribeJobsCommand({ jobs: [runnerJobId] }));
    const job = out.jobs?.find((j) => j.jobId === runnerJobId);
    if (!job?.status) return undefined;
    return { jobId: job.jobName ?? runnerJobId, runnerJobId, state: jobStateOf(job.status), reason: reasonOf(job) };
  }

  /** TerminateJob cancels a queued job and stops a running one; Batch then reports it FAILED with the reason. */
  async cancel(runnerJobId: string, reason: string): Promise<void> {
    await this.client.send(new TerminateJobCommand({ jobId: runnerJobId, reason }));
  }
}
