/**
 * The one place that chooses and imports a TensorFlow.js backend.
 *
 * Order: `@tensorflow/tfjs-node-gpu`, then `@tensorflow/tfjs-node`, then
 * `@tensorflow/tfjs` with the WebAssembly backend. The native packages are
 * optional dependencies because their install downloads libtensorflow, which
 * some machines cannot reach; the wasm route always installs from npm.
 * Set `TL_TF_BACKEND` to `wasm` or `cpu` to force a pure-JS route (useful to
 * compare engines in benchmarks).
 */
import { createRequire } from 'node:module';

export type Tf = typeof import('@tensorflow/tfjs');

export interface TfRuntime {
  tf: Tf;
  /** Package that provided the engine, e.g. `@tensorflow/tfjs-node`. */
  packageName: string;
  /** Backend name as reported by `tf.getBackend()`, e.g. `tensorflow` or `wasm`. */
  backend: string;
}

let runtime: Promise<TfRuntime> | undefined;

async function tryImport(name: string): Promise<Tf | undefined> {
  try {
    return (await import(name)) as Tf;
  } catch {
    return undefined;
  }
}

async function load(log: (msg: string) => void): Promise<TfRuntime> {
  const forced = process.env.TL_TF_BACKEND;
  if (!forced || forced === 'node' || forced === 'tensorflow') {
    for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
      const tf = await tryImport(name);
      if (tf) {
        await tf.ready();
        const rt = { tf, packageName: name, backend: tf.getBackend() };
        log(`tfjs: using ${name} (backend ${rt.backend})`);
        return rt;
      }
    }
  }
  const tf = (await import('@tensorflow/tfjs')) as Tf;
  const wanted = forced === 'cpu' ? 'cpu' : 'wasm';
  if (wanted === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    // In Node the wasm binaries are read from the package's dist folder; give
    // an absolute path so it works whatever the working directory is.
    const require = createRequire(import.meta.url);
    const dist = require.resolve('@tensorflow/tfjs-backend-wasm').replace(/[^/\\]+$/, '');
    wasm.setWasmPaths(dist);
  }
  const ok = await tf.setBackend(wanted);
  if (!ok) throw new Error(`tfjs: backend ${wanted} failed to initialise`);
  await tf.ready();
  if (wanted === 'wasm') {
    // tfjs 4.22's wasm backend has no gradient kernels for convolutions; these make
    // conv layers (fine-tuning, small CNNs) trainable on the fallback too.
    const { registerWasmGradKernels } = await import('./wasm-grad-kernels.js');
    registerWasmGradKernels(tf);
    // Dense layers' gradients multiply by transposed operands, a slow path of this backend.
    const { registerTransposedMatMul } = await import('./wasm-matmul.js');
    registerTransposedMatMul(tf);
  }
  const rt = { tf, packageName: '@tensorflow/tfjs', backend: tf.getBackend() };
  log(`tfjs: using @tensorflow/tfjs (backend ${rt.backend}); install @tensorflow/tfjs-node for native speed`);
  return rt;
}

let defaultLog = (m: string): void => void process.stderr.write(`${m}\n`);

/** Where `loadTf` reports its choice when its caller names no sink: an entry point's structured logger. */
export function setTfLog(log: (msg: string) => void): void {
  defaultLog = log;
}

/**
 * Loads TensorFlow.js once per process and returns the same runtime afterwards.
 * @param log where to report the choice; defaults to stderr so stdout stays clean for JSON.
 */
export function loadTf(log: (msg: string) => void = defaultLog): Promise<TfRuntime> {
  runtime ??= load(log);
  return runtime;
}
