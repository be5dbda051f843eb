/**
 * Worker-thread entry of baseline-thread.ts: trains the from-scratch baseline on the
 * features it is given and posts the result back. Loaded through the bootstrap there.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { fitBaselineOnFeatures } from './baseline.js';
import { setTfLog } from '../tf/loader.js';
import type { BaselineThreadMessage, BaselineWorkerData } from './baseline-thread.js';

const data = workerData as BaselineWorkerData;
const post = (m: BaselineThreadMessage) => parentPort!.postMessage(m);
// The job's output is structured lines: what tfjs says here goes through the parent's log.
setTfLog((line) => post({ type: 'log', line }));
post({ type: 'ready' });
fitBaselineOnFeatures(data.features, data.input, performance.now() - data.featuresMs).then(
  (result) => post({ type: 'result', result }),
  (err: unknown) => post({ type: 'error', name: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? err.message : String(err) }),
);
