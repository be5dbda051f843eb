/**
 * Bundles the dashboard with esbuild: one ES module and one stylesheet (Preact,
 * uPlot and their CSS inside; nothing from a CDN), plus index.html. The embedded
 * platform builds it in memory when it first serves `/`; `npm run build:dashboard`
 * writes the same files to dist/dashboard/ for a bucket behind CloudFront.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildOptions, OutputFile } from 'esbuild';

export interface DashboardAsset {
  body: Buffer;
  contentType: string;
}

/** Files by URL path relative to the dashboard's root: `index.html`, `assets/app.js`, `assets/app.css`. */
export type DashboardAssets = Map<string, DashboardAsset>;

const HERE = path.dirname(fileURLToPath(import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

/** What esbuild is asked for; the same in the async build (the embedded platform) and the sync one (CDK). */
function esbuildOptions(opts: { minify?: boolean }): BuildOptions & { write: false } {
  return {
    entryPoints: { app: path.join(HERE, 'src/main.tsx') },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: opts.minify ?? true,
    sourcemap: false,
    outdir: 'assets',
    write: false,
    logLevel: 'silent',
    legalComments: 'linked',
  };
}

function collectAssets(outputFiles: OutputFile[], indexHtml: Buffer): DashboardAssets {
  const assets: DashboardAssets = new Map();
  for (const file of outputFiles) {
    const rel = `assets/${path.basename(file.path)}`;
    assets.set(rel, { body: Buffer.from(file.contents), contentType: TYPES[path.extname(rel)] ?? 'text/plain; charset=utf-8' });
  }
  assets.set('index.html', { body: indexHtml, contentType: TYPES['.html'] });
  return assets;
}

export async function buildDashboard(opts: { minify?: boolean } = {}): Promise<DashboardAssets> {
  // esbuild is a build tool (devDependency): loaded only when the dashboard is built.
  const { build } = await import('esbuild');
  const result = await build(esbuildOptions(opts));
  return collectAssets(result.outputFiles, await readFile(path.join(HERE, 'index.html')));
}

/**
 * The same build, synchronously: CDK's local bundling (`ILocalBundling.tryBundle`)
 * cannot wait for a promise. Writes the files into `outDir`.
 */
export function buildDashboardInto(outDir: string, opts: { minify?: boolean } = {}): DashboardAssets {
  const { buildSync } = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
  const result = buildSync(esbuildOptions(opts));
  const assets = collectAssets(result.outputFiles, readFileSync(path.join(HERE, 'index.html')));
  for (const [rel, asset] of assets) {
    mkdirSync(path.dirname(path.join(outDir, rel)), { recursive: true });
    writeFileSync(path.join(outDir, rel), asset.body);
  }
  return assets;
}

/** `npm run build:dashboard`: writes the bundle to dist/dashboard/ (or the folder given). */
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = path.resolve(process.argv[2] ?? path.join(HERE, '..', 'dist', 'dashboard'));
  try {
    const assets = buildDashboardInto(out);
    process.stdout.write(`dashboard: ${assets.size} files in ${out}\n`);
  } catch (err) {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  }
}
