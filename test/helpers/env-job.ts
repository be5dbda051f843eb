/**
 * A stand-in job for ChildProcessJobRunner's tests: prints one JSON line with its pid,
 * its main thread's nice value, when its code had loaded, and the variables named in ENV_JOB_SHOW; with --standby it
 * first waits for its environment on stdin, as functions/train/main.ts does.
 * ENV_JOB_EXIT sets its exit code, ENV_JOB_SLEEP_MS how long it runs. `--ready-file=<path>`: writes its pid there once loaded.
 */
import { writeFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { receiveEnvironment, STANDBY_FLAG } from '../../shared/adapters/local/standby.js';

const loadedAt = Date.now();
const ready = process.argv.find((a) => a.startsWith('--ready-file='))?.slice('--ready-file='.length);
if (ready) writeFileSync(ready, String(process.pid));
if (!process.argv.includes(STANDBY_FLAG) || (await receiveEnvironment())) {
  const shown = (process.env.ENV_JOB_SHOW ?? '').split(',').filter(Boolean);
  process.stdout.write(
    `${JSON.stringify({ pid: process.pid, priority: getPriority(), loadedAt, env: Object.fromEntries(shown.map((n) => [n, process.env[n] ?? null])) })}\n`,
  );
  process.exitCode = Number(process.env.ENV_JOB_EXIT ?? 0);
  // ENV_JOB_SLEEP_MS: runs that long before it exits (a job to stop while it runs).
  await new Promise((r) => setTimeout(r, Number(process.env.ENV_JOB_SLEEP_MS ?? 0)));
}
