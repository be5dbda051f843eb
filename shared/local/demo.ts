import path from 'node:path';
import { promises as fs } from 'node:fs';
import { readLatestJobOfModel } from '../jobs/status.js';
import { readAlias } from '../models/registry.js';
import { TERMINAL_STATES, type JobStatus } from '../schemas/job.js';
import { generateShapesDataset, generateShapesImages } from './demo-data.js';
import { warmModel, type Platform } from './platform.js';

export const DEMO_MODEL = 'demo';

export interface DemoOptions {
  out: (line: string) => void;
  /** Images per class of the generated dataset. @default 40 */
  perClass?: number;
  /** How long to wait for the demo job. @default 15 minutes */
  timeoutMs?: number;
}

/** Polls a model's latest job until it ends, reporting phase and epoch changes. */
export async function waitForModelJob(platform: Platform, model: string, opts: { out: (line: string) => void; timeoutMs: number }): Promise<JobStatus> {
  const store = platform.defaultTenant.store;
  const deadline = Date.now() + opts.timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const status = await readLatestJobOfModel(store, model);
    if (status) {
      const line = `  ${status.state}${status.phase ? ` · ${status.phase}` : ''}${status.epoch ? ` · epoch ${status.epoch}/${status.epochs ?? '?'}` : ''} · ${Math.round(status.progress * 100)}%`;
      if (line !== last) opts.out(line);
      last = line;
      if (TERMINAL_STATES.includes(status.state)) return status;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`model ${model} was not trained within ${Math.round(opts.timeoutMs / 1000)} s`);
}

/**
 * Trains the demo model on a dataset the project draws itself (no downloads),
 * the way an app would: every image first, train.json last. Skipped when the
 * model already exists, so a restart serves at once.
 */
export async function runDemo(platform: Platform, options: DemoOptions): Promise<void> {
  const { out } = options;
  const tenant = platform.defaultTenant;
  const heldOutDir = path.join(platform.dataDir, 'demo', 'held-out');
  if (!(await readAlias(tenant.store, DEMO_MODEL, 'latest'))) {
    const datasetDir = path.join(platform.dataDir, 'demo', 'dataset');
    out(`Demo: drawing a shapes dataset in ${datasetDir} and training model "${DEMO_MODEL}" on it...`);
    await fs.rm(datasetDir, { recursive: true, force: true });
    const dataset = await generateShapesDataset(datasetDir, { perClass: options.perClass ?? 40, seed: 7, corrupt: 2 });
    for (const f of [...dataset.images.map((i) => i.path), ...dataset.corrupt]) {
      await tenant.store.put(`datasets/${DEMO_MODEL}/${f}`, await fs.readFile(path.join(datasetDir, f)));
    }
    const spec = { model: DEMO_MODEL };
    await tenant.store.put(`datasets/${DEMO_MODEL}/train.json`, JSON.stringify(spec, null, 2));
    const status = await waitForModelJob(platform, DEMO_MODEL, { out, timeoutMs: options.timeoutMs ?? 15 * 60_000 });
    if (status.state !== 'succeeded') {
      out(`Demo training ${status.state}: ${status.error?.code ?? ''} ${status.error?.message ?? ''}`);
      return;
    }
  }
  await fs.mkdir(heldOutDir, { recursive: true });
  const images = await generateShapesImages({ perClass: 1, seed: 99, formats: ['png'] });
  const written: string[] = [];
  for (const [i, img] of images.entries()) {
    const file = path.join(heldOutDir, `${img.label}-${i}.png`);
    await fs.writeFile(file, img.buffer);
    written.push(file);
  }
  // Paths as a user would type them: relative inside the working folder, absolute outside it.
  const shown = (p: string) => (path.relative(process.cwd(), p).startsWith('..') ? p : path.relative(process.cwd(), p));
  const sample = shown(written[0]);
  // "Serving" means loaded: the first call does not wait about a second for the engine and the session.
  await warmModel(tenant, DEMO_MODEL).catch((err: unknown) => out(`demo: could not load the model ahead of its first call (${(err as Error).message})`));
  out(`Demo model "${DEMO_MODEL}" is serving. Try it on images it has never seen (in ${shown(heldOutDir)}):`);
  out(`  npx tl predict ${DEMO_MODEL} ${written.map(shown).join(' ')}`);
  out(
    `  curl -s -X POST ${platform.url}/models/${DEMO_MODEL}/predict -H "x-api-key: ${tenant.tenant.apiKey}" -H "content-type: application/json" ` +
      `-d "{\\"instances\\":[{\\"image\\":\\"$(base64 -w0 ${sample})\\"}]}"`,
  );
}
