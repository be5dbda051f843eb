/**
 * Bundles the dashboard with esbuild: one ES module and one stylesheet (Preact,
 * uPlot and their CSS inside; nothing from a CDN), plus index.html. The embedded
 * platform builds it in memory when it first serves `/`; `npm run build:dashboard`
 * writes the same files to dist/dashboard/ for a bucket behind CloudFront.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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

export async function buildDashboard(opts: { minify?: boolean } = {}): Promise<DashboardAssets> {
  // esbuild is a build tool (devDependency): loaded only when the dashboard is built.
  const { build } = await import('esbuild');
  const result = await build({
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
  });
  const assets: DashboardAssets = new Map();
  for (const file of result.outputFiles) {
    const rel = `assets/${path.basename(file.path)}`;
    assets.set(rel, { body: Buffer.from(file.contents), contentType: TYPES[path.extname(rel)] ?? 'text/plain; charset=utf-8' });
  }
  assets.set('index.html', { body: await readFile(path.join(HERE, 'index.html')), contentType: TYPES['.html'] });
  return assets;
}

/** `npm run build:dashboard`: writes the bundle to dist/dashboard/ (or the folder given). */
async function main(): Promise<void> {
  const out = path.resolve(process.argv[2] ?? path.join(HERE, '..', 'dist', 'dashboard'));
  const assets = await buildDashboard();
  for (const [rel, asset] of assets) {
    await mkdir(path.dirname(path.join(out, rel)), { recursive: true });
    await writeFile(path.join(out, rel), asset.body);
  }
  process.stdout.write(`dashboard: ${assets.size} files in ${out}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
