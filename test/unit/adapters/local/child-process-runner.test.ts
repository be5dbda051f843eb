import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { getPriority, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChildProcessJobRunner, DEFAULT_JOB_NICENESS } from '../../../../shared/adapters/local/child-process-runner.js';

const helper = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../helpers/env-job.ts');
const node = (...args: string[]) => ({ file: process.execPath, args: ['--import', 'tsx', helper, ...args] });

interface Printed {
  pid: number;
  priority: number;
  loadedAt: number;
  env: Record<string, string | null>;
}

const until = async (what: string, ok: () => Promise<boolean> | boolean, timeoutMs = 30_000) => {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('ChildProcessJobRunner standby', () => {
  let dir: string;
  let runner: ChildProcessJobRunner;
  const lines = new Map<string, string[]>();
  const saved = { ...process.env };

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tl-runner-'));
    lines.clear();
    const readyFile = path.join(dir, 'standby-pid');
    runner = new ChildProcessJobRunner({
      command: node(),
      standby: node('--standby', `--ready-file=${readyFile}`),
      standbyDelayMs: 0,
      onOutput: (id, line) => lines.set(id, [...(lines.get(id) ?? []), line]),
    });
  });
  afterEach(async () => {
    await runner.stopAll();
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
    await rm(dir, { recursive: true, force: true });
  });

  /** Submits a job and waits for its end; returns its state and what it printed. */
  const run = async (jobId: string, env: Record<string, string>) => {
    const submittedAt = Date.now();
    const { runnerJobId } = await runner.submit({ jobId, env: { ENV_JOB_SHOW: 'ENV_JOB_A,ENV_JOB_LATE,ENV_JOB_GONE', ...env } });
    await runner.whenIdle();
    const state = (await runner.describe(runnerJobId))!.state;
    const printed = JSON.parse(lines.get(jobId)!.find((l) => l.startsWith('{'))!) as Printed;
    return { state, printed, submittedAt };
  };
  const standbyPid = async () => {
    const file = path.join(dir, 'standby-pid');
    await until('the standby to load', async () => (await readFile(file, 'utf8').catch(() => '')) !== '');
    return Number(await readFile(file, 'utf8'));
  };

  it('runs the next job in a standby that loaded before it, with the environment a fresh process would get', async () => {
    process.env.ENV_JOB_GONE = 'set when the standby started';
    const first = await run('job-1', { ENV_JOB_A: 'one' });
    expect(first.state).toBe('succeeded');
    // No standby yet for the first job: it loaded after being submitted.
    expect(first.printed.loadedAt).toBeGreaterThanOrEqual(first.submittedAt);
    const pid = await standbyPid();
    expect(alive(pid)).toBe(true);
    // The platform's environment changes after the standby started: the job sees the new one.
    process.env.ENV_JOB_LATE = 'set after';
    delete process.env.ENV_JOB_GONE;
    const second = await run('job-2', { ENV_JOB_A: 'two' });
    expect(second.state).toBe('succeeded');
    expect(second.printed.pid).toBe(pid);
    expect(second.printed.loadedAt).toBeLessThan(second.submittedAt);
    expect(second.printed.env).toEqual({ ENV_JOB_A: 'two', ENV_JOB_LATE: 'set after', ENV_JOB_GONE: null });
  });

  it('runs jobs below its own priority, in a fresh process and in a standby alike', async () => {
    // Relative to the runner's process (started under `nice`, jobs stay below it); Linux caps nice values at 19.
    const expected = Math.min(19, getPriority() + DEFAULT_JOB_NICENESS);
    const first = await run('job-1', {});
    const pid = await standbyPid();
    const second = await run('job-2', {});
    expect(second.printed.pid).toBe(pid);
    expect([first.printed.priority, second.printed.priority]).toEqual([expected, expected]);
  });

  it('runs jobs at its own priority when told to (niceness 0)', async () => {
    await runner.stopAll();
    runner = new ChildProcessJobRunner({
      command: node(),
      standby: false,
      niceness: 0,
      onOutput: (id, line) => lines.set(id, [...(lines.get(id) ?? []), line]),
    });
    const job = await run('job-1', {});
    expect(job.printed.priority).toBe(getPriority());
  });

  it('reports a standby job’s exit code as a fresh process’s', async () => {
    await run('job-1', {});
    const pid = await standbyPid();
    const failed = await run('job-2', { ENV_JOB_EXIT: '3' });
    expect(failed.printed.pid).toBe(pid);
    expect(failed.state).toBe('failed');
  });

  it('does not keep its process alive with an idle standby, which exits when that process does', async () => {
    const script = `
      import { ChildProcessJobRunner } from ${JSON.stringify(path.resolve(path.dirname(helper), '../../shared/adapters/local/child-process-runner.ts'))};
      import { existsSync } from 'node:fs';
      const runner = new ChildProcessJobRunner({ command: ${JSON.stringify(node())}, standby: ${JSON.stringify(node('--standby', `--ready-file=${path.join(dir, 'standby-pid')}`))}, standbyDelayMs: 0, onOutput: () => {} });
      await runner.submit({ jobId: 'j', env: {} });
      await runner.whenIdle();
      while (!existsSync(${JSON.stringify(path.join(dir, 'standby-pid'))})) await new Promise((r) => setTimeout(r, 20));
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: 'inherit' });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    const pid = await standbyPid();
    await until('the orphaned standby to exit', () => !alive(pid));
  });

  it('starts a job in its own process when the standby died just before it, and stops the standby with the runner', async () => {
    await run('job-1', {});
    const dead = await standbyPid();
    await rm(path.join(dir, 'standby-pid'));
    // Killed and handed the job in the same turn: the runner has not seen it exit, so the job
    // goes to the dead process, which never says it received it, and starts again on its own.
    process.kill(dead, 'SIGKILL');
    const second = await run('job-2', { ENV_JOB_A: 'two' });
    expect(second.state).toBe('succeeded');
    expect(second.printed.pid).not.toBe(dead);
    expect(second.printed.env.ENV_JOB_A).toBe('two');
    expect(second.printed.loadedAt).toBeGreaterThanOrEqual(second.submittedAt);
    // Its replacement goes when the runner stops.
    const next = await standbyPid();
    await runner.stopAll();
    await until('the standby to stop', () => !alive(next));
  });

  it('starts no standby after it is stopped, when the jobs it stopped end', async () => {
    const { runnerJobId } = await runner.submit({ jobId: 'long', env: { ENV_JOB_SLEEP_MS: '20000' } });
    await until('the job to print', () => (lines.get('long') ?? []).length > 0);
    await runner.stopAll();
    await runner.whenIdle();
    expect((await runner.describe(runnerJobId))?.state).toBe('cancelled');
    await new Promise((r) => setTimeout(r, 1500));
    await expect(readFile(path.join(dir, 'standby-pid'), 'utf8')).rejects.toThrow(/ENOENT/);
  });
});
