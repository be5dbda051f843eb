/**
 * Builds the `ml-runtime` Lambda layer: the files the preprocess and predict
 * functions need at run time that esbuild cannot put in a bundle.
 *
 * - `sharp` with its Linux x64 (glibc) native addon and libvips: a `.node`
 *   addon and a shared library cannot be inlined.
 * - the tfjs WebAssembly binaries (`@tensorflow/tfjs-backend-wasm/dist/*.wasm`):
 *   shared/tf/loader.ts resolves that package's folder at run time and reads them
 *   from there. Only the binaries, package.json and the entry file (which the
 *   resolution needs to exist) are copied; the backend's JavaScript itself is in
 *   the function bundle.
 * - `onnxruntime-node` with only its Linux x64 native addon and shared library
 *   (the package ships every platform's, 288 MB; linux-x64 is 44 MB) and
 *   `onnxruntime-common`: shared/ml/onnx/runtime.ts imports it at run time (a
 *   computed specifier, so esbuild leaves it out of the bundle), and the frozen
 *   base runs on ONNX Runtime in the function too.
 * - the MobileNetV2 files of `nsfwjs` (dist/models/mobilenet_v2), which
 *   shared/ml/base-models.ts reads by path to import the default base model.
 *
 * Everything is copied from this repository's node_modules (no network, the
 * versions the tests ran), into `<outDir>/nodejs/node_modules`, where Lambda
 * resolves packages of a layer from (NODE_PATH, which the nodejs20.x runtime
 * also applies to ES module imports).
 *
 * Usage: node --import tsx layers/ml-runtime/build.ts [outDir]
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '../..');
/** Where `npm run`-style builds put the layer by default (ignored by git via dist/). */
export const DEFAULT_LAYER_OUT = path.join(HERE, 'dist');

export class LayerBuildError extends Error {
  override name = 'LayerBuildError';
}

interface PackageJson {
  name: string;
  version: string;
  main?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/** Finds an installed package the way Node does: node_modules folders from `fromDir` upwards. */
function findPackageDir(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (path.dirname(dir) === dir) return undefined;
  }
}

const readPackageJson = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson;

/** A package and its installed production dependencies (optional ones only if present, e.g. this platform's binaries). */
function dependencyClosure(name: string, fromDir: string, seen = new Map<string, string>()): Map<string, string> {
  const dir = findPackageDir(name, fromDir);
  if (!dir) throw new LayerBuildError(`${name} is not installed (looked from ${fromDir}); run npm ci first`);
  if (seen.has(name)) return seen;
  seen.set(name, dir);
  const pkg = readPackageJson(dir);
  for (const dep of Object.keys(pkg.dependencies ?? {})) dependencyClosure(dep, dir, seen);
  for (const dep of Object.keys(pkg.optionalDependencies ?? {})) if (findPackageDir(dep, dir)) dependencyClosure(dep, dir, seen);
  return seen;
}

function copyFiles(srcDir: string, destDir: string, relPaths: string[]): void {
  for (const rel of relPaths) {
    const src = path.join(srcDir, rel);
    if (!existsSync(src)) throw new LayerBuildError(`missing ${src}`);
    mkdirSync(path.dirname(path.join(destDir, rel)), { recursive: true });
    cpSync(src, path.join(destDir, rel), { recursive: true, dereference: true });
  }
}

/** Total size in bytes of the files under a folder (what Lambda counts as unzipped size). */
export function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) total += folderBytes(p);
    else total += statSync(p).size;
  }
  return total;
}

export interface BuildLayerOptions {
  /** Folder to fill; emptied first. */
  outDir: string;
  /** Where node_modules is looked up from. @default the repository root */
  fromDir?: string;
}

/** Builds the layer synchronously (CDK's local bundling hook is synchronous). Returns its size in bytes. */
export function buildMlRuntimeLayer(options: BuildLayerOptions): number {
  const from = options.fromDir ?? REPO_ROOT;
  const modules = path.join(options.outDir, 'nodejs', 'node_modules');
  rmSync(options.outDir, { recursive: true, force: true });
  mkdirSync(modules, { recursive: true });

  // sharp: whole packages, with the native binaries installed for this machine.
  const sharp = dependencyClosure('sharp', from);
  if (![...sharp.keys()].includes('@img/sharp-linux-x64') || ![...sharp.keys()].includes('@img/sharp-libvips-linux-x64')) {
    throw new LayerBuildError(
      'sharp has no linux-x64 binaries installed here; build the layer on Linux x64 (glibc), or run `npm install --os=linux --cpu=x64 --libc=glibc sharp` first',
    );
  }
  for (const [name, dir] of sharp) cpSync(dir, path.join(modules, name), { recursive: true, dereference: true });

  // tfjs wasm binaries at the path the loader resolves.
  const wasmDir = findPackageDir('@tensorflow/tfjs-backend-wasm', from);
  if (!wasmDir) throw new LayerBuildError('@tensorflow/tfjs-backend-wasm is not installed');
  const wasmPkg = readPackageJson(wasmDir);
  const wasmFiles = readdirSync(path.join(wasmDir, 'dist')).filter((f) => f.endsWith('.wasm'));
  if (wasmFiles.length === 0) throw new LayerBuildError('no .wasm files in @tensorflow/tfjs-backend-wasm/dist');
  copyFiles(wasmDir, path.join(modules, '@tensorflow/tfjs-backend-wasm'), ['package.json', wasmPkg.main ?? 'index.js', ...wasmFiles.map((f) => `dist/${f}`)]);

  // ONNX Runtime: the JavaScript, and the native files of the one platform Lambda runs.
  const ortDir = findPackageDir('onnxruntime-node', from);
  const ortCommon = ortDir && findPackageDir('onnxruntime-common', ortDir);
  if (!ortDir || !ortCommon) throw new LayerBuildError('onnxruntime-node is not installed');
  const native = 'bin/napi-v6/linux/x64';
  copyFiles(ortDir, path.join(modules, 'onnxruntime-node'), ['package.json', 'dist', ...readdirSync(path.join(ortDir, native)).map((f) => `${native}/${f}`)]);
  cpSync(ortCommon, path.join(modules, 'onnxruntime-common'), { recursive: true, dereference: true });

  // The default base model's files.
  const nsfwDir = findPackageDir('nsfwjs', from);
  if (!nsfwDir) throw new LayerBuildError('nsfwjs is not installed');
  copyFiles(nsfwDir, path.join(modules, 'nsfwjs'), ['package.json', 'dist/cjs/index.js', 'dist/models/mobilenet_v2']);

  return folderBytes(options.outDir);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outDir = path.resolve(process.argv[2] ?? DEFAULT_LAYER_OUT);
  const bytes = buildMlRuntimeLayer({ outDir });
  process.stdout.write(`ml-runtime layer: ${outDir} (${(bytes / 1024 / 1024).toFixed(1)} MiB unzipped)\n`);
}
