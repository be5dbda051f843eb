/**
 * The from-scratch baseline (baseline.ts) trained on a second core while the job goes
 * on: the training job starts it once the records are known (after `embed`) and the
 * `compare` stage collects it. The search and the heads run on the main thread's tfjs
 * (one wasm thread), so on two cores most of the baseline's 2.5–3 s come off the
 * 500-image pipeline (README, runs F–I and the A/B beside them).
 *
 * The worker loads TypeScript through tsx (./ts-worker.ts). When no second core is
 * available, or the worker cannot start, the baseline trains on this thread: same code,
 * same seed, same figures.
 */
import { availableParallelism } from 'node:os';
import { startTsWorker } from './ts-worker.js';
import { baselineFeatures, fitBaselineOnFeatures, type BaselineFeatures, type BaselineResult, type FitBaselineInput } from './baseline.js';

export interface BaselineWorkerData {
  features: BaselineFeatures;
  input: { heads: FitBaselineInput['heads']; seed?: number; epochs?: number };
  /** Milliseconds the features took on the parent thread (counted in the result's `ms`). */
  featuresMs: number;
}

export type BaselineThreadMessage =
  { type: 'ready' } | { type: 'log'; line: string } | { type: 'result'; result: BaselineResult } | { type: 'error'; name: string; message: string };

export interface BaselineRun {
  /** The baseline's result; rejects as fitBaseline would. */
  result: Promise<BaselineResult | undefined>;
  /** Where it trains: `worker` (a second core) or `main` (this thread, when awaited). */
  where: 'worker' | 'main';
  /** Stops a worker still training (the job failed or was cancelled); nothing to do on the main thread. */
  stop(): void;
}

/**
 * Starts the baseline: on a worker thread when the machine has a second core, else
 * lazily on this one (when `result` is first awaited, as the compare stage always did).
 * @param log told where the baseline runs, and why a worker could not be used
 */
export async function startBaseline(
  input: FitBaselineInput,
  log: (line: string) => void = () => {},
  /** Cores to count on (@default os.availableParallelism()) and the worker's module (@default baseline-worker.ts); tests set them. */
  opts: { cores?: number; entry?: URL } = {},
): Promise<BaselineRun> {
  const started = performance.now();
  const features = await baselineFeatures(input);
  if (!features) return { result: Promise.resolve(undefined), where: 'main', stop() {} };
  const featuresMs = performance.now() - started;
  // On this thread the training starts when the result is first asked for (the compare
  // stage), not interleaved with the stages before it.
  const here = () => fitBaselineOnFeatures(features, input, performance.now() - featuresMs);
  if ((opts.cores ?? availableParallelism()) < 2) return lazyRun('main', here);
  const data: BaselineWorkerData = { features, input: { heads: input.heads, seed: input.seed, epochs: input.epochs }, featuresMs };
  const worker = startTsWorker(opts.entry ?? new URL('./baseline-worker.ts', import.meta.url), data);
  // loading → ready (training there), or → failed (its code would not load: it trains here).
  let state: 'loading' | 'ready' | 'failed' = 'loading';
  const spawned = performance.now();
  // The worker's result, or `undefined` when it could not load its code (then it trains here).
  const outcome = new Promise<{ result: BaselineResult } | undefined>((resolve, reject) => {
    worker.on('message', (m: BaselineThreadMessage) => {
      if (m.type === 'log') return log(m.line);
      if (m.type === 'ready') {
        state = 'ready';
        log(`baseline: training on a worker thread, beside the job (its code loaded in ${Math.round(performance.now() - spawned)} ms)`);
      } else if (m.type === 'result') resolve({ result: m.result });
      else reject(Object.assign(new Error(m.message), { name: m.name }));
      if (m.type !== 'ready') void worker.terminate();
    });
    worker.on('error', (err) => {
      if (state === 'ready') return reject(err);
      state = 'failed';
      log(`baseline: no worker thread (${err.message}); training it on the main thread`);
      resolve(undefined);
    });
    worker.on('exit', (code) => reject(new Error(`the baseline's worker thread exited with code ${code} before its result`)));
  });
  // Settled later by the compare stage; a failure before then must not count as unhandled.
  outcome.catch(() => undefined);
  const stop = () => void worker.terminate();
  return lazyRun(
    'worker',
    () => {
      // Asked for before the worker even loaded its code (a small job, a busy machine): training here is sooner.
      if (state === 'loading') {
        stop();
        log('baseline: the worker thread had not loaded its code yet; training it on the main thread');
        return here();
      }
      return outcome.then((o) => (o ? o.result : here()));
    },
    stop,
  );
}

/** A run whose result is computed once, when first asked for (a getter: spreading the object would ask). */
function lazyRun(where: BaselineRun['where'], run: () => Promise<BaselineResult>, stop: () => void = () => {}): BaselineRun {
  let result: Promise<BaselineResult> | undefined;
  return {
    get result() {
      return (result ??= run());
    },
    where,
    stop,
  };
}
