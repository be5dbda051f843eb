/**
 * Every write to a job's status during the job goes through one JobProgress: the
 * phase changes, the throttled progress ticks from inside long loops, and the final
 * success or failure.
 */
import { recordEpoch, updateJobStatus } from '../../shared/jobs/status.js';
import type { ObjectStore } from '../../shared/ports/object-store.js';
import type { JobStatus } from '../../shared/schemas/job.js';

export class JobProgress {
  // Status writes are read-modify-write; chained so a tick fired from a callback can
  // never land after (and undo) a later phase change.
  private queue: Promise<unknown> = Promise.resolve();
  private lastTick = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly store: ObjectStore,
    readonly jobId: string,
    private readonly now: () => Date,
    /** Least time between two ticks. */
    private readonly intervalMs: number,
  ) {}

  /** Writes `patch` after every earlier write. */
  update(patch: Partial<JobStatus>): Promise<JobStatus> {
    const next = this.queue.then(() => updateJobStatus(this.store, this.jobId, patch));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Writes one training epoch's figures into the status history (what the dashboard's live curves read), with `patch`, after every earlier write. */
  epoch(entry: Record<string, number>, patch: Partial<JobStatus>): Promise<JobStatus> {
    const next = this.queue.then(() => recordEpoch(this.store, this.jobId, entry, patch));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** A progress write from inside a loop: at most one per interval, and never failing the loop (the next phase change writes anyway). */
  tick(patch: Partial<JobStatus>): void {
    const t = this.now().getTime();
    if (t - this.lastTick < this.intervalMs) return;
    this.lastTick = t;
    void this.update(patch).catch(() => undefined);
  }
}

/** Share of the job's progress bar each stage ends at. */
export const PROGRESS = { loaded: 0.02, embedded: 0.45, searched: 0.55, trained: 0.85, evaluated: 0.88, compared: 0.95, gated: 0.97, published: 1 } as const;
