import { NameSchema } from '../schemas/common.js';
import type { SearchReport } from '../schemas/search.js';
import { JobStatusSchema, TERMINAL_STATES, type JobStatus } from '../schemas/job.js';
import { ApiError, CliError, UsageError, callApi, type Connection } from './cli-client.js';
import { ProgressLine, renderJobLine, type Output } from './cli-progress.js';

/** Exit codes of `tl status`, also used by `tl upload --wait`. */
export const STATUS_EXIT = { succeeded: 0, failed: 1, timeout: 2 } as const;

export interface StatusOptions extends Connection {
  model: string;
  stdout: Output;
  stderr: Output;
  /** Poll until the job ends. @default false */
  wait?: boolean;
  /** Give up waiting after this many seconds (exit code 2). @default 3600 */
  timeoutSeconds?: number;
  /** Time between polls. @default 1000 */
  pollIntervalMs?: number;
  /** Ignore jobs created before this instant: they belong to earlier uploads. */
  since?: Date;
  /** Print the status as JSON on stdout instead of a summary. @default false */
  json?: boolean;
  /** Injected in tests. @default Date.now */
  now?: () => number;
}

// The platform may add fields to the status before this CLI learns of them.
const LooseJobStatusSchema = JobStatusSchema.loose();

/** `undefined` when the model has no job yet (404). */
export async function fetchJobStatus(conn: Connection, model: string): Promise<JobStatus | undefined> {
  let body: unknown;
  try {
    body = await callApi(conn, `/models/${encodeURIComponent(model)}/job`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return undefined;
    throw error;
  }
  const parsed = LooseJobStatusSchema.safeParse(body);
  if (!parsed.success) throw new CliError(`unexpected job status from the platform: ${parsed.error.issues[0]?.message ?? ''}`);
  return parsed.data;
}

function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATES.includes(status.state);
}

/** The representation search as a small table: one row a candidate, the chosen one marked, then the verdict. */
export function leaderboardLines(search: SearchReport): string[] {
  const name = (e: SearchReport['leaderboard'][number]) =>
    `${e.candidate}${e.family === 'hidden' ? ` + hidden layer${e.folds ? ` (${e.folds}-fold)` : ''}` : ''}`;
  const width = Math.max(...search.leaderboard.map((e) => name(e).length));
  // Multi-task: the criterion is a ratio to each task's best; the tasks' own CV accuracies follow it.
  const perTask = (e: SearchReport['leaderboard'][number]) =>
    e.tasks && Object.keys(e.tasks).length > 1
      ? `  (${Object.entries(e.tasks)
          .map(([t, v]) => `${t} ${v.cvMean.toFixed(3)}`)
          .join(', ')})`
      : '';
  return [
    `representation search (${search.criterion}, ${search.folds}-fold CV on ${search.records} records, ${search.seconds.toFixed(1)} s):`,
    ...search.leaderboard.map(
      (e) =>
        `  ${e.chosen ? '*' : ' '} ${name(e).padEnd(width)}  ${e.cvMean === undefined ? (e.note ?? 'not scored') : `${e.cvMean.toFixed(3)} ± ${(e.cvSd ?? 0).toFixed(3)}  ${(e.seconds ?? 0).toFixed(1)} s${perTask(e)}${e.note ? `  (${e.note})` : ''}`}`,
    ),
    `  ${search.verdict}`,
  ];
}

function summarise(status: JobStatus): string {
  const lines = [`model ${status.model}: ${status.state}${status.phase && !isTerminal(status) ? ` (${status.phase})` : ''}, job ${status.jobId}`];
  if (!isTerminal(status))
    lines.push(`progress ${Math.round((status.progress ?? 0) * 100)}%${status.epoch !== undefined ? `, epoch ${status.epoch}/${status.epochs ?? '?'}` : ''}`);
  if (status.version) lines.push(`version ${status.version}${status.promoted === false ? ' (not promoted to latest)' : ''}`);
  if (status.promotionReason) lines.push(`promotion: ${status.promotionReason}`);
  const r = status.records;
  if (r && r.skipped > 0) {
    const shown = r.firstSkipped.map((f) => `${f.key} (${f.reason})`).join('; ');
    lines.push(
      `skipped ${r.skipped} of ${r.total} files: ${shown}${r.skipped > r.firstSkipped.length ? `; and ${r.skipped - r.firstSkipped.length} more` : ''}${r.report ? ` (all in ${r.report})` : ''}`,
    );
  }
  const metrics = Object.entries(status.metrics ?? {});
  if (metrics.length > 0) lines.push(`metrics ${metrics.map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`).join(', ')}`);
  if (status.search) lines.push(...leaderboardLines(status.search));
  return `${lines.join('\n')}\n`;
}

function report(status: JobStatus, options: StatusOptions): number {
  options.stdout.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : summarise(status));
  if (status.state === 'succeeded') return STATUS_EXIT.succeeded;
  if (status.state === 'failed' || status.state === 'cancelled') {
    const reason = status.error ? `${status.error.code}: ${status.error.message}` : 'no reason given';
    options.stderr.write(`job ${status.jobId} ${status.state}: ${reason}\n`);
    return STATUS_EXIT.failed;
  }
  // Not finished and not waiting: like a wait that timed out at once, so scripts can tell.
  return STATUS_EXIT.timeout;
}

/** Transient platform trouble is worth riding out while waiting; a wrong key is not. */
function isTransient(error: unknown): boolean {
  return error instanceof ApiError && (error.status >= 500 || error.status === 429);
}

/**
 * Prints a model's latest job. With `wait`, polls until it ends, drawing a progress bar
 * on stderr. Returns the exit code: 0 only for a job that succeeded, 1 for a failed or
 * cancelled one, 2 on timeout (or, without `wait`, while the job is still going).
 */
export async function showStatus(options: StatusOptions): Promise<number> {
  const check = NameSchema.safeParse(options.model);
  if (!check.success) throw new UsageError(`model "${options.model}": ${check.error.issues[0]?.message ?? 'invalid name'}`);
  const now = options.now ?? Date.now;
  const since = options.since?.getTime();
  const current = async () => {
    const status = await fetchJobStatus(options, options.model);
    // A job from an earlier upload is not the one this wait is about.
    if (status && since !== undefined && Date.parse(status.createdAt) < since) return undefined;
    return status;
  };

  if (!options.wait) {
    const status = await current();
    if (!status)
      throw new CliError(
        `model ${options.model} has no training job${since !== undefined ? ` since ${new Date(since).toISOString()}` : ''}: upload a dataset with \`tl upload <dir> --model ${options.model}\``,
      );
    return report(status, options);
  }

  const timeoutMs = (options.timeoutSeconds ?? 3600) * 1000;
  const interval = options.pollIntervalMs ?? 1000;
  const deadline = now() + timeoutMs;
  const progress = new ProgressLine(options.stderr);
  let last: JobStatus | undefined;
  let warnedTransient = false;
  for (;;) {
    let status: JobStatus | undefined;
    try {
      status = await current();
    } catch (error) {
      if (!isTransient(error)) {
        progress.done();
        throw error;
      }
      if (!warnedTransient) {
        progress.done();
        options.stderr.write(`warning: ${(error as Error).message}; still waiting\n`);
        warnedTransient = true;
      }
      status = last;
    }
    if (status) {
      last = status;
      progress.update(renderJobLine(status), `${status.state}|${status.phase ?? ''}|${status.epoch ?? ''}`);
      if (isTerminal(status)) {
        progress.done();
        return report(status, options);
      }
    } else {
      progress.update(`waiting for a training job for model ${options.model}...`, 'waiting');
    }
    const left = deadline - now();
    if (left <= 0) {
      progress.done();
      const where = last ? `job ${last.jobId} is ${last.state}${last.phase ? ` (${last.phase})` : ''}` : 'no job started';
      const hint = last || since === undefined ? '' : ' (an upload identical to an earlier one starts no new job)';
      options.stderr.write(`timed out after ${timeoutMs / 1000}s waiting for model ${options.model}: ${where}${hint}\n`);
      return STATUS_EXIT.timeout;
    }
    await new Promise((r) => setTimeout(r, Math.min(interval, left)));
  }
}
