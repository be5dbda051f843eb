import { setFlagsFromString } from 'node:v8';
import { HeapEnvSchema, loadEnv } from './schemas/env.js';

/**
 * Gives a serving process's V8 heap more room between full (mark-compact) collections.
 *
 * Why: V8 sizes the old generation's next limit from the live size after a full collection
 * and a growing factor it picks from its own speed estimates. In the serving process (70 MB
 * live) that factor sometimes came out so small that the heap reached its limit every 7–9 MB
 * of allocation: a full collection every 15–40 one-image predicts, each holding the event
 * loop 20–30 ms (incremental marking steps, then the final pause). Measured here, runs of
 * 1000 predicts in a row on the onnx engine (2 cores): with V8's choice 8 of 36 runs went
 * that way (17–63 full collections, p99 37–51 ms; the others 0–6, p99 16–26 ms); with the
 * factor fixed at 1.5 and the embedder's one-image input buffers reused (onnx/embedder.ts)
 * 15 of 15 runs had 2–3 full collections, p99 16.5–24 ms. The price is up to half the live
 * heap in extra memory (about 35 MB here).
 *
 * Process-wide (`TL_HEAP_GROWING_PERCENT`, default 50; 0 gives V8 its choice back); setting
 * it again is harmless. Called where a process starts serving predictions: the predict
 * Lambda's cold start and `startPlatform` (the local server, and the bench that hosts it).
 * @throws ConfigError when TL_HEAP_GROWING_PERCENT is not an integer from 0 to 300
 */
export function preferShortGcPauses(env: NodeJS.ProcessEnv = process.env, setFlags: (flags: string) => void = setFlagsFromString): void {
  const { TL_HEAP_GROWING_PERCENT: percent } = loadEnv(HeapEnvSchema, env);
  setFlags(`--heap-growing-percent=${percent}`);
}
