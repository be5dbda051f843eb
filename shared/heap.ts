import { setFlagsFromString } from 'node:v8';

/** Head room, as a percentage of the live heap, that V8 leaves before its next full collection. */
export const SERVING_HEAP_GROWING_PERCENT = 50;

let applied = false;

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
 * factor fixed at 1.5 and the embedder's input buffers reused (onnx/embedder.ts) 15 of 15 runs
 * had 2–3 full collections, p99 16.5–24 ms. The price is up to half the live heap in extra
 * memory (about 35 MB here).
 *
 * Process-wide and idempotent; called by the inference API's handler factory, so both the
 * Lambda container and the local server get it. `TL_HEAP_GROWING_PERCENT=0` keeps V8's own
 * choice.
 */
export function preferShortGcPauses(env: NodeJS.ProcessEnv = process.env): void {
  if (applied) return;
  applied = true;
  const raw = env.TL_HEAP_GROWING_PERCENT;
  const percent = raw === undefined || raw === '' ? SERVING_HEAP_GROWING_PERCENT : Number(raw);
  if (!Number.isInteger(percent) || percent < 0 || percent > 400) {
    throw new RangeError(`TL_HEAP_GROWING_PERCENT must be an integer from 0 to 400, got "${raw}"`);
  }
  // 0 is V8's default: it picks the factor itself.
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}
