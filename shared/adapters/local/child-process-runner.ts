import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { getPriority, setPriority } from 'node:os';
import type { Socket } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobDescription, JobRequest, JobRunner } from '../../ports/job-runner.js';
import { STANDBY_ACK, STANDBY_FLAG } from './standby.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** The training job's entry point: the same file the Batch container runs. */
export const TRAIN_ENTRY = path.join(repoRoot, 'functions/train/main.ts');
const JOB_COMMAND = { file: process.execPath, args: ['--import', 'tsx', TRAIN_ENTRY] };

/**
 * Jobs run 10 nice levels below the platform's process by default. Measured here (2 cores, onnx engine, 3 December 2026):
 * one-image predicts every 20 ms while a 501-image job trained, twice each way: p50
 * 19.4 / 20.5 ms and p99 64.6 / 78.2 ms at the same priority, 15.2 / 13.9 ms and
 * 49.6 / 43.7 ms at nice 10; the pipeline with no requests alongside took the same time
 * either way (11.4–12.0 s).
 */
export const DEFAULT_JOB_NICENESS = 10;

/** Whether a child process (and its pipes) keeps this process's event loop alive. */
function holdLoop(child: ChildProcess, hold: boolean): void {
  for (const handle of [child, child.stdin, child.stdout, child.stderr] as Array<ChildProcess | Socket | null>) {
    if (hold) handle?.ref();
    else handle?.unref();
  }
}

export interface ChildProcessJobRunnerOptions {
  /** Jobs run at once; the rest wait, as in a Batch queue. @default 1 */
  concurrency?: number;
  /** Command line of the job. @default node --import tsx functions/train/main.ts */
  command?: { file: string; args: string[] };
  /**
   * Command line of a standby: a job process started before its job, which loads its code
   * and then reads the job's environment as JSON on stdin (./standby.ts). One is kept
   * ready; a job starts in it when it is alive, else in a process of its own as before.
   * `false` turns it off. @default the job's entry point with --standby, when `command` is not set
   */
  standby?: { file: string; args: string[] } | false;
  /**
   * Nice value of job processes: how much less of the CPU a job gets than the platform's
   * server when both want it (0 or false: the same). Predictions stay quick while a model
   * trains, and a job alone on the machine runs as fast as before.
   * @default DEFAULT_JOB_NICENESS
   */
  niceness?: number | false;
  /** How long after a job ends the next standby starts (see replenishLater). @default 2000 */
  standbyDelayMs?: number;
  /** Where the children's output goes, one line at a time. @default stderr with a prefix */
  onOutput?: (jobId: string, line: string) => void;
  /** Called when a job's process ends, e.g. to record a crash the job could not record itself. */
  onExit?: (description: JobDescription, request: JobRequest) => void;
}

interface Entry {
  request: JobRequest;
  runnerJobId: string;
  state: JobDescription['state'];
  reason?: string;
  child?: ChildProcess;
  /** The last lines the job printed: why it died, when it could not record that itself. */
  tail: string[];
}

/**
 * JobRunner of the embedded default: each job is a child process with the same
 * environment contract as the AWS Batch job. Jobs queue up to `concurrency`.
 */
export class ChildProcessJobRunner implements JobRunner {
  private readonly jobs = new Map<string, Entry>();
  private readonly waiting: Entry[] = [];
  private running = 0;
  private readonly idleWaiters = new Set<() => void>();
  private spare?: ChildProcess;
  private spareTimer?: NodeJS.Timeout;
  /** Set by stopAll: no standby starts until a job is submitted again. */
  private stopped = false;

  constructor(private readonly options: ChildProcessJobRunnerOptions = {}) {}

  async submit(request: JobRequest): Promise<{ runnerJobId: string }> {
    const runnerJobId = `local-${randomBytes(4).toString('hex')}`;
    const entry: Entry = { request, runnerJobId, state: 'submitted', tail: [] };
    this.jobs.set(runnerJobId, entry);
    this.stopped = false;
    this.waiting.push(entry);
    this.pump();
    return { runnerJobId };
  }

  async describe(runnerJobId: string): Promise<JobDescription | undefined> {
    const e = this.jobs.get(runnerJobId);
    return e && { jobId: e.request.jobId, runnerJobId, state: e.state, reason: e.reason };
  }

  async cancel(runnerJobId: string, reason: string): Promise<void> {
    const e = this.jobs.get(runnerJobId);
    if (!e || e.state === 'succeeded' || e.state === 'failed' || e.state === 'cancelled') return;
    e.reason = reason;
    if (e.child) e.child.kill('SIGTERM');
    else {
      this.waiting.splice(this.waiting.indexOf(e), 1);
      e.state = 'cancelled';
    }
  }

  get idle(): boolean {
    return this.running === 0 && this.waiting.length === 0;
  }

  /** Resolves when no job is queued or running. */
  whenIdle(): Promise<void> {
    if (this.running === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.add(resolve));
  }

  /** Stops every running job and the standby (used on shutdown). */
  async stopAll(): Promise<void> {
    // The jobs stopped below end after this returns; their ends must not start a standby.
    this.stopped = true;
    clearTimeout(this.spareTimer);
    this.spare?.kill('SIGTERM');
    this.spare = undefined;
    for (const e of this.jobs.values()) await this.cancel(e.runnerJobId, 'platform stopped');
  }

  private standbyCommand(): { file: string; args: string[] } | undefined {
    const { standby, command } = this.options;
    if (standby === false) return undefined;
    return standby ?? (command ? undefined : { file: JOB_COMMAND.file, args: [...JOB_COMMAND.args, STANDBY_FLAG] });
  }

  /**
   * Starts a standby unless one is waiting, so the next job starts in a process that has
   * loaded its code (the platform calls this when it starts; after a job, the runner does).
   * It holds no reference on this process's event loop until it gets a job (an idle standby
   * never keeps the platform from exiting), and when this process ends its stdin closes, on
   * which it exits.
   */
  prepareStandby(): void {
    const cmd = this.standbyCommand();
    if (!cmd || this.spare || this.stopped) return;
    const child = spawn(cmd.file, cmd.args, { cwd: repoRoot, env: process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    child.on('error', () => {}); // a standby that cannot start is dropped below; the job then starts on its own
    this.lowerPriority(child);
    child.on('exit', () => {
      if (this.spare === child) this.spare = undefined;
    });
    holdLoop(child, false);
    this.spare = child;
  }

  /**
   * The next standby starts a while after a job ends, not while it runs: two processes
   * loading at once here each take about 60 % longer (measured: a job's start went from
   * 1.1 to 1.8 s with a standby loading beside it), and right at its end the model just
   * published answers its first predictions.
   */
  private replenishLater(): void {
    // With jobs waiting the next one starts at once; the end of the last one replenishes.
    if (!this.standbyCommand() || this.spare || this.stopped || this.waiting.length > 0) return;
    clearTimeout(this.spareTimer);
    this.spareTimer = setTimeout(() => this.prepareStandby(), this.options.standbyDelayMs ?? 2000);
    this.spareTimer.unref();
  }

  /**
   * Gives a job process (or a standby, as it starts) the `niceness` below the platform's.
   * On Linux a nice value belongs to a thread and new threads inherit their creator's:
   * set right after the spawn, it covers the job's main thread and what that thread starts
   * later (ONNX Runtime's pool, the baseline's worker); threads node started in the
   * meantime keep the normal priority.
   */
  private lowerPriority(child: ChildProcess): void {
    const niceness = this.options.niceness ?? DEFAULT_JOB_NICENESS;
    if (!niceness || child.pid === undefined) return;
    try {
      // Relative to this process (Linux's range ends at 19): a server started with `nice` keeps its jobs below it.
      setPriority(child.pid, Math.min(19, getPriority() + niceness));
    } catch {
      // Not allowed or already gone: the job runs at the normal priority, as it did before.
    }
  }

  /** The waiting standby, handed `env` and holding this process's event loop as a job does; undefined when none is alive. */
  private takeSpare(env: NodeJS.ProcessEnv): ChildProcess | undefined {
    const child = this.spare;
    this.spare = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return undefined;
    holdLoop(child, true);
    // Should it have died unseen (its exit not yet handled), the write fails quietly; it
    // never acknowledges the job, which then starts again in a process of its own (start()).
    child.stdin!.on('error', () => {});
    child.stdin!.end(`${JSON.stringify(env)}\n`);
    return child;
  }

  private pump(): void {
    const limit = this.options.concurrency ?? 1;
    while (this.running < limit && this.waiting.length > 0) this.start(this.waiting.shift()!);
    if (this.running === 0 && this.waiting.length === 0) {
      for (const r of this.idleWaiters) r();
      this.idleWaiters.clear();
    }
  }

  private start(e: Entry): void {
    const cmd = this.options.command ?? JOB_COMMAND;
    const out = this.options.onOutput ?? ((id, line) => process.stderr.write(`[${id}] ${line}\n`));
    e.state = 'running';
    this.running++;
    const env = { ...process.env, ...e.request.env };
    const spare = this.takeSpare(env);
    const child = spare ?? spawn(cmd.file, cmd.args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    e.child = child;
    if (!spare) this.lowerPriority(child);
    // A standby says when it has its job (STANDBY_ACK, not forwarded); one that ends
    // without saying so had died before it got it, and the job starts again in a process
    // of its own instead of failing for it.
    let received = !spare;
    const forward = (stream: NodeJS.ReadableStream) => {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (!received && line === STANDBY_ACK) {
            received = true;
            continue;
          }
          out(e.request.jobId, line);
          if (line.trim() && received) e.tail = [...e.tail.slice(-4), readable(line).slice(0, 500)];
        }
      });
      stream.on('end', () => buf && out(e.request.jobId, buf));
    };
    forward(child.stdout!);
    forward(child.stderr!);
    child.on('error', (err) => {
      e.reason = err.message;
    });
    child.on('close', (code, signal) => {
      e.child = undefined;
      if (!received && !e.reason) {
        this.running--;
        e.state = 'submitted';
        this.waiting.unshift(e);
        this.pump();
        return;
      }
      if (e.reason && signal) e.state = 'cancelled';
      else if (code === 0) e.state = 'succeeded';
      else {
        e.state = 'failed';
        // The line that says why, if the job said it: the last one naming a failure or an errno.
        const why = [...e.tail].reverse().find((l) => /fail|error|E[A-Z]{3,}\b/i.test(l));
        e.reason ??= `${signal ? `killed by ${signal}` : `exited with code ${code}`}${why ? `: ${why.trim()}` : ''}`;
      }
      this.running--;
      this.replenishLater();
      this.options.onExit?.({ jobId: e.request.jobId, runnerJobId: e.runnerJobId, state: e.state, reason: e.reason }, e.request);
      this.pump();
    });
  }
}

/**
 * A job's output line as a person reads it: for the job's JSON log lines, the
 * message and the error's message (which names the errno of a full or read-only
 * disk); other lines as they are.
 */
function readable(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const entry = JSON.parse(line) as { message?: unknown; code?: unknown; error?: { message?: unknown } };
    const parts = [entry.message, entry.code, entry.error?.message].filter((p): p is string => typeof p === 'string' && p !== '');
    return parts.length ? parts.join(': ') : line;
  } catch {
    return line;
  }
}
