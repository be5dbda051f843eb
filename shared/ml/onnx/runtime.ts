/**
 * Which engine runs the frozen part of a model: ONNX Runtime (onnxruntime-node,
 * CPU execution provider) or TensorFlow.js. Configured once at cold start from
 * the validated environment (shared/wiring.ts calls `configureEngine`); read by
 * the embedder loader. The choice and any fallback are logged once per process.
 *
 * - `TL_ENGINE=auto` (default): onnx when onnxruntime-node loads, else tfjs with
 *   one log line saying why.
 * - `TL_ENGINE=onnx`: onnx, and an error when onnxruntime-node cannot load.
 * - `TL_ENGINE=tfjs`: tfjs only (onnxruntime-node is never imported).
 */
import { availableParallelism } from 'node:os';
import { EngineEnvSchema, loadEnv, type EngineEnv } from '../../schemas/env.js';

export type Ort = typeof import('onnxruntime-node');
export type EngineName = 'onnx' | 'tfjs';

export interface EngineConfig {
  /** @default 'auto' */
  engine?: 'auto' | EngineName;
  /** Intra-op threads of each ONNX session. @default the cores available (os.availableParallelism) */
  threads?: number;
  /** Where choices and fallbacks are reported. @default stderr */
  log?: (line: string) => void;
  /** Imports onnxruntime-node; tests replace it to exercise the fallback. */
  importRuntime?: () => Promise<Ort>;
}

export class EngineUnavailableError extends Error {
  override name = 'EngineUnavailableError';
}

let config: EngineConfig | undefined;
let chosen: Promise<{ engine: EngineName; ort?: Ort }> | undefined;

/** Sets the engine configuration (once at cold start; tests call it again to switch). Forgets an earlier choice. */
export function configureEngine(next: EngineConfig): void {
  config = { ...next };
  chosen = undefined;
}

/** The configuration from validated environment variables (TL_ENGINE, TL_ONNX_THREADS). */
export const engineConfigFromEnv = (env: EngineEnv): EngineConfig => ({ engine: env.TL_ENGINE, threads: env.TL_ONNX_THREADS });

/** The configuration set at cold start, or read from the environment on first use when no entry point set one (tests, scripts). */
function current(): EngineConfig {
  config ??= engineConfigFromEnv(loadEnv(EngineEnvSchema));
  return config;
}

export const engineThreads = (): number => current().threads ?? availableParallelism();
const log = (line: string) => (current().log ?? ((l: string) => process.stderr.write(`${l}\n`)))(line);

/**
 * A computed specifier, so bundlers (esbuild for the Lambda functions) leave the
 * import alone instead of trying to inline the native addon: it resolves at run time
 * from node_modules or a layer, and where it is absent the engine falls back to tfjs.
 */
const ORT_MODULE: string = 'onnxruntime-node';

/** The ONNX module's own exports, whether the import gave the namespace or a CommonJS default. */
const importOrt = async (): Promise<Ort> => {
  const mod = (await import(ORT_MODULE)) as Ort & { default?: Ort };
  return mod.InferenceSession ? mod : mod.default!;
};

async function choose(): Promise<{ engine: EngineName; ort?: Ort }> {
  const config = current();
  const wanted = config.engine ?? 'auto';
  if (wanted === 'tfjs') {
    log('frozen base engine: tfjs (TL_ENGINE=tfjs)');
    return { engine: 'tfjs' };
  }
  try {
    const ort = await (config.importRuntime ?? importOrt)();
    log(`frozen base engine: onnxruntime-node ${ort.env.versions?.node ?? ''} (cpu, ${engineThreads()} intra-op threads)`.replace('  ', ' '));
    return { engine: 'onnx', ort };
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    if (wanted === 'onnx') throw new EngineUnavailableError(`TL_ENGINE=onnx but onnxruntime-node cannot load: ${why}`);
    log(`frozen base engine: tfjs (onnxruntime-node cannot load: ${why})`);
    return { engine: 'tfjs' };
  }
}

/** The engine of this process, chosen on first use. @throws EngineUnavailableError when onnx is forced and cannot load */
export function frozenEngine(): Promise<{ engine: EngineName; ort?: Ort }> {
  chosen ??= choose();
  return chosen;
}

/** Reports that one base keeps tfjs although onnx is in use (its export failed), once per base. */
const keptTfjs = new Set<string>();
export function logModelFallback(base: string, reason: string): void {
  if (keptTfjs.has(base)) return;
  keptTfjs.add(base);
  log(`frozen base engine: base ${base} keeps tfjs: ${reason}`);
}

/** The engine that runs `base`'s frozen part in this process (recorded in model metadata). */
export async function engineOf(base: string): Promise<EngineName> {
  if (base === 'none') return 'tfjs';
  const { engine } = await frozenEngine();
  return engine === 'onnx' && !keptTfjs.has(base) ? 'onnx' : 'tfjs';
}
