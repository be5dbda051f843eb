import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startPlatform, type Platform, type PlatformOptions } from '../../shared/local/platform.js';
import { TERMINAL_STATES, type JobStatus } from '../../shared/schemas/job.js';
import { forEachLimited } from '../../shared/concurrency.js';

export interface TestPlatform {
  platform: Platform;
  apiKey: string;
  /** Output lines of training jobs, for diagnosing a failure. */
  jobOutput: string[];
  call(method: string, urlPath: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
  /** Uploads files the way `tl upload` does: every file, then train.json last. */
  upload(dataset: string, files: Array<{ path: string; data: Buffer | string }>): Promise<void>;
  /** Waits for the model's latest job created at or after `since` (ms epoch) to end. */
  waitForJob(model: string, opts?: { timeoutMs?: number; since?: number }): Promise<JobStatus>;
  close(): Promise<void>;
}

/** A real local platform on a free loopback port with a throwaway data folder. */
export async function startTestPlatform(options: Partial<PlatformOptions> = {}): Promise<TestPlatform> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'tl-e2e-'));
  const jobOutput: string[] = [];
  const platform = await startPlatform({
    dataDir,
    port: 0,
    retryDelayMs: 100,
    log: () => {},
    runner: { onOutput: (id, line) => jobOutput.push(`[${id}] ${line}`) },
    ...options,
  });
  const apiKey = platform.defaultTenant.tenant.apiKey;
  const call: TestPlatform['call'] = async (method, urlPath, body, headers) => {
    const res = await fetch(`${platform.url}${urlPath}`, {
      method,
      headers: { 'x-api-key': apiKey, 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON: keep the text */
    }
    return { status: res.status, body: parsed };
  };
  return {
    platform,
    apiKey,
    jobOutput,
    call,
    async upload(dataset, files) {
      const ordered = [...files.filter((f) => f.path !== 'train.json'), ...files.filter((f) => f.path === 'train.json')];
      const res = await call('POST', `/datasets/${dataset}/uploads`, { files: ordered.map((f) => ({ path: f.path })) });
      if (res.status !== 200) throw new Error(`upload URLs: ${res.status} ${JSON.stringify(res.body)}`);
      const uploads = res.body.uploads as Array<{ url: string; headers: Record<string, string> }>;
      const put = async (i: number) => {
        const r = await fetch(uploads[i].url, { method: 'PUT', headers: uploads[i].headers, body: new Uint8Array(Buffer.from(ordered[i].data)) });
        if (r.status !== 200) throw new Error(`PUT ${ordered[i].path}: ${r.status} ${await r.text()}`);
      };
      // As `tl upload` sends them: four in flight (its default), train.json (which starts training) after the rest.
      const last = ordered.at(-1)?.path === 'train.json' ? ordered.length - 1 : ordered.length;
      await forEachLimited([...Array(last).keys()], 4, put);
      if (last < ordered.length) await put(last);
    },
    async waitForJob(model, { timeoutMs = 240_000, since = 0 } = {}) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const res = await call('GET', `/models/${model}/job`);
        if (res.status === 200 && Date.parse(res.body.createdAt) >= since && TERMINAL_STATES.includes(res.body.state)) {
          await platform.whenIdle();
          return res.body as JobStatus;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new Error(`job of ${model} did not finish in ${timeoutMs} ms; output:\n${jobOutput.slice(-30).join('\n')}`);
    },
    async close() {
      await platform.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Every file under `dir` with its `/`-separated relative path, as `tl upload` would send it. */
export async function readTree(dir: string): Promise<Array<{ path: string; data: Buffer }>> {
  const out: Array<{ path: string; data: Buffer }> = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const full = path.join(e.parentPath, e.name);
    out.push({ path: path.relative(dir, full).split(path.sep).join('/'), data: await readFile(full) });
  }
  return out;
}
