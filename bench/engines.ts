/**
 * Section `engines` of `npm run bench`: the frozen base (MobileNetV2, 224×224) on
 * both engines in the same run, tfjs (whatever backend the loader chose, printed)
 * and ONNX Runtime (onnxruntime-node, CPU), in images/s at batch 1, 8 and 32, with
 * onnx/tfjs ratios. Images are synthetic: throughput does not depend on content.
 *
 * Why it times this way: a single pass of one batch (0.2 s at batch 32 on onnx) swung
 * 44 / 89 / 173 images/s between runs on a shared 2-core machine. So each figure is
 * the median of several rounds, each round timing at least `images` images per
 * batch size (several batches), and the engines alternate inside a round (tfjs then
 * onnx, then onnx then tfjs, ...), so a burst of other work hits both rather than
 * one. CPU time per image (process.cpuUsage, every thread of this process) comes
 * with each figure: it says how much of the cores an engine used, which wall time
 * alone cannot on a machine that others share.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { FsObjectStore } from '../shared/adapters/local/fs-object-store.js';
import { resolveBase } from '../shared/ml/base-models.js';
import { loadEmbedder, type Embedder } from '../shared/ml/embedder.js';
import { MAX_RUN } from '../shared/ml/onnx/embedder.js';
import { configureEngine, engineThreads, type EngineName } from '../shared/ml/onnx/runtime.js';
import { loadTf } from '../shared/tf/loader.js';

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const BATCHES = [1, 8, 32] as const;
const ENGINES = ['tfjs', 'onnx'] as const;
const PER_IMAGE = 224 * 224 * 3;

function synthetic(count: number): Uint8Array {
  const pixels = new Uint8Array(count * PER_IMAGE);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
  return pixels;
}

interface Pass {
  imagesPerSecond: number;
  cpuMsPerImage: number;
}

/** One timed pass of `count` images at `batch` (the embedder splits them into batches). */
async function timePass(embedder: Embedder, pixels: Uint8Array, count: number, batch: number): Promise<Pass> {
  const cpu = process.cpuUsage();
  const t = performance.now();
  await embedder.embed(pixels.subarray(0, count * PER_IMAGE), count, { batchSize: batch });
  const seconds = (performance.now() - t) / 1000;
  const used = process.cpuUsage(cpu);
  return { imagesPerSecond: count / seconds, cpuMsPerImage: (used.user + used.system) / 1000 / count };
}

export interface EngineBenchOptions {
  /** Images timed per batch size, engine and round (rounded up to whole batches of 32). @default 128 */
  images?: number;
  /** Rounds; each figure is the median over them. @default 3 */
  rounds?: number;
  log?: (line: string) => void;
}

export async function benchEngines(opts: EngineBenchOptions = {}) {
  const log = opts.log ?? (() => {});
  const count = Math.max(32, Math.ceil((opts.images ?? 128) / 32) * 32);
  const rounds = Math.max(1, opts.rounds ?? 3);
  const { backend, packageName } = await loadTf();
  const dir = await mkdtemp(path.join(tmpdir(), 'tl-bench-engines-'));
  const store = new FsObjectStore({ root: dir });
  const passes: Record<EngineName, Record<string, Pass[]>> = { tfjs: {}, onnx: {} };
  const embedders: Partial<Record<EngineName, Embedder>> = {};
  const loadBefore = loadavg()[0];
  try {
    const base = await resolveBase(store, 'mobilenet_v2');
    // Both engines loaded side by side: the engine is chosen when an embedder loads.
    for (const engine of ENGINES) {
      configureEngine({ engine, log });
      embedders[engine] = await loadEmbedder(store, base);
      if ((embedders[engine].engine ?? 'tfjs') !== engine) throw new Error(`asked for the ${engine} engine, got ${embedders[engine].engine ?? 'tfjs'}`);
    }
    const pixels = synthetic(count);
    for (const engine of ENGINES) for (const b of BATCHES) await timePass(embedders[engine]!, pixels, b, b); // warm-up per batch size
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? ENGINES : [...ENGINES].reverse();
      for (const engine of order) {
        for (const b of BATCHES) {
          const pass = await timePass(embedders[engine]!, pixels, count, b);
          (passes[engine][`batch${b}`] ??= []).push(pass);
          log(`engines: round ${r + 1} ${engine} batch ${b}: ${round(pass.imagesPerSecond)} images/s, ${round(pass.cpuMsPerImage)} CPU ms/image`);
        }
      }
    }
  } finally {
    for (const e of Object.values(embedders)) e.dispose();
    configureEngine({});
    await rm(dir, { recursive: true, force: true });
  }
  const summary = (engine: EngineName) => {
    const keys = BATCHES.map((b) => `batch${b}`);
    return {
      imagesPerSecond: Object.fromEntries(keys.map((k) => [k, round(median(passes[engine][k].map((p) => p.imagesPerSecond)))])),
      cpuMsPerImage: Object.fromEntries(keys.map((k) => [k, round(median(passes[engine][k].map((p) => p.cpuMsPerImage)))])),
      roundsImagesPerSecond: Object.fromEntries(keys.map((k) => [k, passes[engine][k].map((p) => round(p.imagesPerSecond))])),
    };
  };
  const tfjs = summary('tfjs');
  const onnx = summary('onnx');
  const ratio = (k: string) => round(onnx.imagesPerSecond[k] / tfjs.imagesPerSecond[k], 1);
  return {
    base: 'mobilenet_v2',
    imagesPerBatchSize: count,
    rounds,
    statistic: 'median over rounds',
    loadAverage: { before: round(loadBefore), after: round(loadavg()[0]) },
    tfjs: { backend, package: packageName, ...tfjs },
    onnx: {
      runtime: 'onnxruntime-node (cpu)',
      intraOpThreads: engineThreads(),
      cores: availableParallelism(),
      // A batch larger than this runs as several session runs (MAX_RUN in shared/ml/onnx/embedder.ts).
      imagesPerRun: MAX_RUN,
      ...onnx,
    },
    onnxOverTfjs: Object.fromEntries(BATCHES.map((b) => [`batch${b}`, ratio(`batch${b}`)])),
    // The same comparison in CPU time per image, which other work on the machine disturbs less than wall time.
    cpuTfjsOverOnnx: Object.fromEntries(BATCHES.map((b) => [`batch${b}`, round(tfjs.cpuMsPerImage[`batch${b}`] / onnx.cpuMsPerImage[`batch${b}`], 1)])),
  };
}
