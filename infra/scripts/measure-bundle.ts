/**
 * Builds the predict function the way the CDK app deploys it (esbuild bundle +
 * ml-runtime layer) and reports its unzipped size against Lambda's 250 MB limit.
 * With `--cold-start` it also publishes a MobileNetV2-based model to a temporary
 * folder store and times, in a fresh Node process, importing the bundled handler
 * and serving predicts from it (see cold-start.ts).
 *
 * Usage: node --import tsx infra/scripts/measure-bundle.ts [outDir] [--cold-start]
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { buildMlRuntimeLayer, folderBytes } from '../../layers/ml-runtime/build.js';
import { ESM_BANNER, EXTERNAL_MODULES, LAMBDA_UNZIPPED_LIMIT_BYTES, NODE_TARGET } from '../lib/bundling.js';
import { repoPath } from '../lib/paths.js';

export interface BundleMeasurement {
  /** Folder laid out like Lambda: task/ (the function) and opt/ (the layer). */
  outDir: string;
  handlerFile: string;
  functionBytes: number;
  layerBytes: number;
  totalBytes: number;
  limitBytes: number;
  fits: boolean;
}

/** Bundles `functions/<name>/handler.ts` with the deployed settings into `<outDir>/task`. */
export async function bundleFunction(name: string, outDir: string): Promise<string> {
  const taskDir = path.join(outDir, 'task');
  mkdirSync(taskDir, { recursive: true });
  const outfile = path.join(taskDir, 'index.mjs');
  await build({
    entryPoints: [repoPath('functions', name, 'handler.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: NODE_TARGET,
    format: 'esm',
    mainFields: ['module', 'main'],
    banner: { js: ESM_BANNER },
    external: EXTERNAL_MODULES,
    minify: true,
    logLevel: 'error',
  });
  return outfile;
}

export async function measurePredictBundle(outDir: string): Promise<BundleMeasurement> {
  rmSync(outDir, { recursive: true, force: true });
  const handlerFile = await bundleFunction('predict', outDir);
  const layerBytes = buildMlRuntimeLayer({ outDir: path.join(outDir, 'opt') });
  const functionBytes = folderBytes(path.join(outDir, 'task'));
  // Locally, Node does not search NODE_PATH for ES modules as Lambda's runtime
  // does; a node_modules link next to the bundle resolves the layer's packages the same way.
  symlinkSync(path.join(outDir, 'opt', 'nodejs', 'node_modules'), path.join(outDir, 'task', 'node_modules'), 'dir');
  const totalBytes = functionBytes + layerBytes;
  return {
    outDir,
    handlerFile,
    functionBytes,
    layerBytes,
    totalBytes,
    limitBytes: LAMBDA_UNZIPPED_LIMIT_BYTES,
    fits: totalBytes <= LAMBDA_UNZIPPED_LIMIT_BYTES,
  };
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const cold = args.indexOf('--cold-start');
  const outDir = path.resolve(args[0] && !args[0].startsWith('--') ? args[0] : path.join(tmpdir(), 'tl-predict-bundle'));
  const m = await measurePredictBundle(outDir);
  process.stdout.write(
    `predict function: ${mib(m.functionBytes)} (${statSync(m.handlerFile).size} bytes index.mjs) + ml-runtime layer ${mib(m.layerBytes)} = ${mib(m.totalBytes)} unzipped; Lambda limit ${mib(m.limitBytes)}: ${m.fits ? 'fits' : 'TOO LARGE'}\n`,
  );
  if (cold >= 0) {
    const { measureColdStart, publishColdStartModel } = await import('./cold-start.js');
    const bucketDir = mkdtempSync(path.join(tmpdir(), 'tl-coldstart-'));
    try {
      const model = await publishColdStartModel(bucketDir);
      const r = await measureColdStart({ handlerFile: m.handlerFile, bucketDir, model });
      process.stdout.write(
        `cold start (measured locally, ${r.backend}): import ${r.importMs.toFixed(0)} ms, first predict ${r.firstPredictMs.toFixed(0)} ms (loads MobileNetV2 + head), next predict ${r.secondPredictMs.toFixed(0)} ms (status ${r.status})\n`,
      );
    } finally {
      rmSync(bucketDir, { recursive: true, force: true });
    }
  }
  if (!m.fits) process.exitCode = 1;
}
