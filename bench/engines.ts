/**
 * Section `engines` of `npm run bench`: the frozen base (MobileNetV2, 224×224) on
 * both engines in the same run, tfjs (whatever backend the loader chose, printed)
 * and ONNX Runtime (onnxruntime-node, CPU), in images/s at batch 1, 8 and 32, with
 * onnx/tfjs ratios. Images are synthetic: throughput does not depend on content.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { FsObjectStore } from '../shared/adapters/local/fs-object-store.js';
import { resolveBase } from '../shared/ml/base-models.js';
import { loadEmbedder, type Embedder } from '../shared/ml/embedder.js';
import { configureEngine, engineThreads, frozenEngine } from '../shared/ml/onnx/runtime.js';
import { loadTf } from '../shared/tf/loader.js';

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const BATCHES = [1, 8, 32] as const;

function synthetic(count: number): Uint8Array {
  const pixels = new Uint8Array(count * 224 * 224 * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
  return pixels;
}

/** Images/s of `embedder` at `batch`, over at least `minImages` images after a warm-up batch. */
async function throughput(embedder: Embedder, batch: number, minImages: number): Promise<number> {
  const count = Math.max(batch, Math.ceil(minImages / batch) * batch);
  const pixels = synthetic(count);
  await embedder.embed(pixels.subarray(0, batch * 224 * 224 * 3), batch, { batchSize: batch });
  const t = performance.now();
  await embedder.embed(pixels, count, { batchSize: batch });
  return round(count / ((performance.now() - t) / 1000));
}

export interface EngineBenchOptions {
  /** Images timed per batch size and engine (rounded up to whole batches). @default 32 */
  images?: number;
  log?: (line: string) => void;
}

export async function benchEngines(opts: EngineBenchOptions = {}) {
  const log = opts.log ?? (() => {});
  const images = opts.images ?? 32;
  const { backend, packageName } = await loadTf();
  const dir = await mkdtemp(path.join(tmpdir(), 'tl-bench-engines-'));
  const store = new FsObjectStore({ root: dir });
  const figures: Record<string, Record<string, number>> = { tfjs: {}, onnx: {} };
  try {
    const base = await resolveBase(store, 'mobilenet_v2');
    for (const engine of ['tfjs', 'onnx'] as const) {
      configureEngine({ engine, log });
      await frozenEngine();
      const embedder = await loadEmbedder(store, base);
      try {
        for (const b of BATCHES) {
          figures[engine][`batch${b}`] = await throughput(embedder, b, engine === 'tfjs' ? Math.min(images, 16) : images);
          log(`engines: ${engine} batch ${b}: ${figures[engine][`batch${b}`]} images/s`);
        }
      } finally {
        embedder.dispose();
      }
    }
  } finally {
    configureEngine({});
    await rm(dir, { recursive: true, force: true });
  }
  const ratios = Object.fromEntries(BATCHES.map((b) => [`batch${b}`, round(figures.onnx[`batch${b}`] / figures.tfjs[`batch${b}`], 1)]));
  return {
    base: 'mobilenet_v2',
    tfjs: { backend, package: packageName, imagesPerSecond: figures.tfjs },
    onnx: { runtime: 'onnxruntime-node (cpu)', intraOpThreads: engineThreads(), cores: availableParallelism(), imagesPerSecond: figures.onnx },
    onnxOverTfjs: ratios,
  };
}
