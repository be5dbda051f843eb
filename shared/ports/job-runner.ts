import type { JobState } from '../schemas/job.js';

export interface JobRequest {
  /** Deterministic platform job id; also the Batch job name. */
  jobId: string;
  /** The job's environment contract: `TrainJobEnvSchema` plus the platform env. */
  env: Record<string, string>;
}

export interface JobDescription {
  jobId: string;
  runnerJobId: string;
  state: JobState;
  reason?: string;
}

/** JobRunner: AWS Batch in the cloud, a child process on the embedded default. */
export interface JobRunner {
  /** Starts the job; returns the runner's id for it. */
  submit(request: JobRequest): Promise<{ runnerJobId: string }>;
  describe(runnerJobId: string): Promise<JobDescription | undefined>;
  cancel(runnerJobId: string, reason: string): Promise<void>;
}
