/**
 * Worker threads that run this project's TypeScript modules. A worker inherits neither
 * the loader hooks of `--import tsx` (measured: Node 20 refuses the .ts entry) nor
 * vitest's, so the bootstrap registers tsx's ESM loader in the worker itself and then
 * imports the entry.
 */
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
(async () => {
  (await import(workerData.tsx)).register();
  await import(workerData.entry);
})();
`;

/** tsx's ESM API (`tsx/esm/api`, import condition): a CommonJS resolve would give its require build. */
function tsxApi(): string {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('tsx/package.json');
  const { exports } = require('tsx/package.json') as { exports: Record<string, { import: { default: string } }> };
  return pathToFileURL(resolve(dirname(pkg), exports['./esm/api'].import.default)).href;
}

/** A worker running the TypeScript module `entry`, which reads `data` as its workerData. */
export function startTsWorker(entry: URL, data: object): Worker {
  return new Worker(BOOTSTRAP, { eval: true, workerData: { ...data, entry: entry.href, tsx: tsxApi() } });
}
