/**
 * Load bench (issue 12): the embedded platform as `npm start` runs it, in its own
 * process, under autocannon at several concurrencies, for several rounds. Reports
 * requests/s, p50/p99 latency, errors, 5xx and 429 counts per step, and the
 * server's RSS after each round (read from /proc, so the client's memory is not in it).
 *
 * What it checks (printed, and recorded under `checks`): no 5xx at any concurrency,
 * 429s only above the server's in-flight bound, RSS after the last round within 10%
 * of after the first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { generateShapesImages } from '../shared/local/demo-data.js';
import { DEMO_MODEL } from '../shared/local/demo.js';
import { DEFAULT_MAX_INFLIGHT_PREDICTS } from '../shared/local/server.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

export interface LoadOptions {
  /** @default [1, 4, 16, 64] */
  concurrencies?: number[];
  /** Seconds per concurrency step. @default 20 */
  seconds?: number;
  /** @default 3 */
  rounds?: number;
  log: (line: string) => void;
}

export interface LoadStep {
  concurrency: number;
  requestsPerSecond: number;
  okPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  tooMany: number;
  serverErrors: number;
  otherNon2xx: number;
  errors: number;
  timeouts: number;
}

export interface LoadFigures {
  maxInFlightPredicts: number;
  secondsPerStep: number;
  idleRssMb: number;
  rounds: Array<{ steps: LoadStep[]; rssAfterMb: number }>;
  /** RSS after the last round over RSS after the first, minus 1. */
  rssGrowthFirstToLast: number;
  checks: { no5xx: boolean; tooManyOnlyAboveBound: boolean; rssWithin10Percent: boolean };
}

/** Resident set size of a process in MB, from /proc (Linux). */
async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
  return round(kb / 1024);
}

/** Starts `shared/local/main.ts` (what `npm start` runs) with the demo model; resolves once it says Ready. */
async function startServer(dataDir: string, log: (line: string) => void): Promise<{ child: ChildProcess; url: string; apiKey: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'shared/local/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', TL_DATA_DIR: dataDir, TL_DEMO: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr.on('data', () => undefined);
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`the server exited with ${code} before it was ready:\n${out}`)));
    const onOut = (chunk: Buffer) => {
      out += chunk.toString('utf8');
      if (!out.includes('Ready.')) return;
      child.stdout.off('data', onOut);
      child.stdout.resume();
      const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      const apiKey = /API key: (\S+)/.exec(out)?.[1];
      if (!url || !apiKey) return reject(new Error(`could not read the server's address and key:\n${out}`));
      log(`load: server ready at ${url} (pid ${child.pid})`);
      child.removeAllListeners('exit');
      resolve({ child, url, apiKey });
    };
    child.stdout.on('data', onOut);
  });
}

async function step(url: string, apiKey: string, body: string, concurrency: number, seconds: number): Promise<LoadStep> {
  const r = await autocannon({
    url: `${url}/models/${DEMO_MODEL}/predict`,
    method: 'POST',
    headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
    body,
    connections: concurrency,
    duration: seconds,
  });
  const count = (code: number) => r.statusCodeStats?.[`${code}`]?.count ?? 0;
  const ok = count(200);
  const tooMany = count(429);
  return {
    concurrency,
    requestsPerSecond: round(r.requests.average),
    okPerSecond: round(ok / seconds),
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    ok,
    tooMany,
    serverErrors: r['5xx'],
    otherNon2xx: r.non2xx - tooMany - r['5xx'],
    errors: r.errors,
    timeouts: r.timeouts,
  };
}

export async function benchLoad(opts: LoadOptions): Promise<LoadFigures> {
  const concurrencies = opts.concurrencies ?? [1, 4, 16, 64];
  const seconds = opts.seconds ?? 20;
  const rounds = opts.rounds ?? 3;
  const dataDir = await mkdtemp(path.join(tmpdir(), 'tl-load-'));
  opts.log('load: starting the embedded platform and training its demo model...');
  const { child, url, apiKey } = await startServer(dataDir, opts.log);
  try {
    const image = (await generateShapesImages({ perClass: 1, seed: 77, formats: ['png'] }))[0].buffer.toString('base64');
    const body = JSON.stringify({ instances: [{ image }] });
    // Warm the model cache, so the first step does not time a cold load.
    await step(url, apiKey, body, 1, 2);
    const idleRssMb = await rssMb(child.pid!);
    const figures: LoadFigures['rounds'] = [];
    for (let r = 1; r <= rounds; r++) {
      const steps: LoadStep[] = [];
      for (const c of concurrencies) {
        const s = await step(url, apiKey, body, c, seconds);
        steps.push(s);
        opts.log(
          `load: round ${r} c=${c}: ${s.requestsPerSecond} req/s (${s.okPerSecond} answered 200/s), p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms, 429 ${s.tooMany}, 5xx ${s.serverErrors}, errors ${s.errors}`,
        );
      }
      const rssAfterMb = await rssMb(child.pid!);
      figures.push({ steps, rssAfterMb });
      opts.log(`load: round ${r} done, server RSS ${rssAfterMb} MB (idle ${idleRssMb} MB)`);
    }
    const all = figures.flatMap((f) => f.steps);
    const growth = round(figures[figures.length - 1].rssAfterMb / figures[0].rssAfterMb - 1, 3);
    const checks = {
      no5xx: all.every((s) => s.serverErrors === 0),
      tooManyOnlyAboveBound: all.every((s) => s.tooMany === 0 || s.concurrency > DEFAULT_MAX_INFLIGHT_PREDICTS),
      rssWithin10Percent: Math.abs(growth) <= 0.1,
    };
    opts.log(`load: checks ${JSON.stringify(checks)}; RSS first → last round ${(growth * 100).toFixed(1)}%`);
    return { maxInFlightPredicts: DEFAULT_MAX_INFLIGHT_PREDICTS, secondsPerStep: seconds, idleRssMb, rounds: figures, rssGrowthFirstToLast: growth, checks };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** A markdown table of the rounds, for the README. */
export function loadTable(f: LoadFigures): string {
  const rows = f.rounds.flatMap((r, i) =>
    r.steps.map(
      (s) =>
        `| ${i + 1} | ${s.concurrency} | ${s.requestsPerSecond} | ${s.okPerSecond} | ${s.p50Ms} | ${s.p99Ms} | ${s.tooMany} | ${s.serverErrors} | ${s.errors} | ${s.concurrency === f.rounds[0].steps.at(-1)!.concurrency ? r.rssAfterMb : ''} |`,
    ),
  );
  return [
    '| round | concurrency | req/s | 200/s | p50 ms | p99 ms | 429 | 5xx | errors | RSS after round (MB) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}
