/**
 * `npm start`: the embedded platform on one machine, no AWS account needed.
 * PORT (default 8080) and TL_DATA_DIR (default .data) configure it; TL_DEMO=0
 * skips training the demo model; TL_MAX_INFLIGHT_PREDICTS bounds predictions in flight (429 beyond it);
 * TL_JOB_NICENESS is the nice value of training jobs (default 10: below the server; 0: the same).
 */
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { z } from 'zod';
import { ConfigError, loadEnv } from '../schemas/env.js';
import { startPlatform, type Platform } from './platform.js';
import { runDemo } from './demo.js';

const LocalEnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  TL_DATA_DIR: z.string().min(1).default('.data'),
  TL_HOST: z.string().default('127.0.0.1'),
  TL_DEMO: z.enum(['0', '1', 'false', 'true']).default('1'),
  /** Predict calls in flight before the server answers 429 with Retry-After. */
  TL_MAX_INFLIGHT_PREDICTS: z.coerce.number().int().min(1).optional(),
  /** How far below the server's priority training jobs run (a nice value, 0 to 19). */
  TL_JOB_NICENESS: z.coerce.number().int().min(0).max(19).optional(),
});

async function main(): Promise<void> {
  const env = loadEnv(LocalEnvSchema);
  // Log lines are JSON (the structure the Lambda functions log); in a terminal, Powertools' dev mode indents them for people.
  if (process.stdout.isTTY && process.env.POWERTOOLS_DEV === undefined) process.env.POWERTOOLS_DEV = 'true';
  const out = (line: string) => process.stdout.write(`${line}\n`);
  let platform: Platform;
  try {
    platform = await startPlatform({
      dataDir: env.TL_DATA_DIR,
      port: env.PORT,
      host: env.TL_HOST,
      maxInFlightPredicts: env.TL_MAX_INFLIGHT_PREDICTS,
      runner: env.TL_JOB_NICENESS === undefined ? undefined : { niceness: env.TL_JOB_NICENESS },
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      process.stderr.write(`port ${env.PORT} is in use: stop the other server or set PORT=<free port>\n`);
      process.exit(1);
    }
    throw err;
  }
  const tenant = platform.defaultTenant.tenant;
  out(`Transfer-learning platform (embedded) listening on ${platform.url}`);
  out(`  data:    ${platform.dataDir}`);
  out(`  tenant:  ${tenant.id}`);
  out(`  API key: ${tenant.apiKey}   (also in ${path.join(platform.dataDir, 'tenants.json')})`);
  out(`  export TL_ENDPOINT=${platform.url} TL_API_KEY=${tenant.apiKey}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    out(`\n${signal}: stopping (unfinished jobs resume on the next start)`);
    await platform.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  if (env.TL_DEMO === '1' || env.TL_DEMO === 'true') {
    await fs.mkdir(platform.dataDir, { recursive: true });
    await runDemo(platform, { out }).catch((err) => out(`demo: ${(err as Error).message}`));
  }
  out('Ready. Ctrl-C stops the platform.');
}

main().catch((err) => {
  // A setting that does not validate is the user's to fix: its message, not a stack trace.
  process.stderr.write(`${err instanceof ConfigError ? err.message : ((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
