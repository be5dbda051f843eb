/**
 * `npm run bench`: the platform's speed figures on this machine, with the
 * TensorFlow.js backend printed first and everything written to
 * bench/results/latest.json (plus a dated copy). Figures come with a baseline
 * measured in the same run where one makes sense, as ratios.
 *
 * Sections: embedding, engines, head, predict, pipeline, retrain, mtl, transfer, load (default: all).
 * Pick some with `npm run bench -- predict pipeline`. `engines` times the frozen base on tfjs and on
 * ONNX Runtime side by side (bench/engines.ts). `retrain` times a re-train after adding 1 % of the images
 * against the cold run (bench/retrain.ts; `TL_BENCH_RETRAIN_IMAGES`, default 300). `load` runs the embedded server under autocannon
 * (bench/load.ts); `--load-seconds=N` shortens its 20 s steps for a quick look. `mtl` compares single-task, hard and soft
 * sharing on Fashion-MNIST (bench/mtl.ts; MobileNetV2 embeddings cached in bench/.cache/).
 */
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTf } from '../shared/tf/loader.js';
import { benchEmbedding, benchHeadTraining, ensureFashionMnist } from './ml.js';
import { benchTransfer, transferTable } from './transfer.js';
import { benchMultiTask, mtlTable } from './mtl.js';
import { benchRetrain } from './retrain.js';
import { benchLoad, loadTable } from './load.js';
import { benchEngines } from './engines.js';
import { configureEngine } from '../shared/ml/onnx/runtime.js';
import { generateShapesDataset, generateShapesImages } from '../shared/local/demo-data.js';
import { readTree, startTestPlatform, type TestPlatform } from '../test/helpers/platform.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const log = (line: string) => process.stderr.write(`${line}\n`);

/** Uploads a generated dataset over HTTP and times it until the model answers predict. */
async function uploadAndServe(t: TestPlatform, model: string, perClass: number, work: string) {
  const dir = path.join(work, model);
  await generateShapesDataset(dir, { perClass, seed: 11 });
  const files = (await readTree(dir)).filter((f) => f.path !== 'train.json');
  files.push({ path: 'train.json', data: Buffer.from(JSON.stringify({ model, training: { epochs: 20 } })) });
  const probe = (await generateShapesImages({ perClass: 1, seed: 5 }))[0].buffer.toString('base64');
  const t0 = performance.now();
  await t.upload(model, files);
  const uploadedAt = performance.now();
  const job = await t.waitForJob(model, { timeoutMs: 60 * 60_000 });
  if (job.state !== 'succeeded') throw new Error(`job ${job.state}: ${job.error?.message}`);
  const res = await t.call('POST', `/models/${model}/predict`, { instances: [{ image: probe }] });
  if (res.status !== 200) throw new Error(`predict answered ${res.status}`);
  const servable = performance.now();
  return { images: files.length - 1, uploadSeconds: round((uploadedAt - t0) / 1000), uploadToServableSeconds: round((servable - t0) / 1000), job };
}

async function benchPredictAndPipeline(sections: Set<string>, embeddingFigures: { batch1ImagesPerSecond: number; batch32ImagesPerSecond: number } | undefined) {
  const out: Record<string, unknown> = {};
  const t = await startTestPlatform();
  const work = await mkdtemp(path.join(tmpdir(), 'tl-bench-'));
  try {
    if (sections.has('predict')) {
      log('predict: training a small model to call...');
      await uploadAndServe(t, 'bench-small', 10, work);
      const image = (await generateShapesImages({ perClass: 1, seed: 77 }))[0].buffer.toString('base64');
      const body = { instances: [{ image }] };
      for (let i = 0; i < 3; i++) await t.call('POST', '/models/bench-small/predict', body); // warm the model cache
      const times: number[] = [];
      for (let i = 0; i < 50; i++) {
        const s = performance.now();
        const res = await t.call('POST', '/models/bench-small/predict', body);
        times.push(performance.now() - s);
        if (res.status !== 200) throw new Error(`predict answered ${res.status}`);
      }
      const p50 = percentile(times, 50);
      const embedMs = embeddingFigures ? 1000 / embeddingFigures.batch1ImagesPerSecond : undefined;
      out.predict = {
        requests: times.length,
        p50Ms: round(p50, 1),
        p99Ms: round(percentile(times, 99), 1),
        baselineEmbedOneImageMs: embedMs && round(embedMs, 1),
        p50OverEmbedRatio: embedMs && round(p50 / embedMs),
      };
      log(`predict: p50 ${round(p50, 1)} ms, p99 ${round(percentile(times, 99), 1)} ms over HTTP`);
    }
    if (sections.has('pipeline')) {
      log('pipeline: 500-image dataset, upload to servable model...');
      const r = await uploadAndServe(t, 'bench-500', 167, work);
      const embedOnly = embeddingFigures ? r.images / embeddingFigures.batch32ImagesPerSecond : undefined;
      out.pipeline = {
        images: r.images,
        uploadSeconds: r.uploadSeconds,
        uploadToServableSeconds: r.uploadToServableSeconds,
        baselineEmbedAllSeconds: embedOnly && round(embedOnly, 1),
        overEmbedOnlyRatio: embedOnly && round(r.uploadToServableSeconds / embedOnly),
        testMetrics: (await t.call('GET', '/models/bench-500')).body.metrics,
      };
      log(`pipeline: ${r.images} images servable after ${r.uploadToServableSeconds} s`);
    }
  } finally {
    await t.close();
    await rm(work, { recursive: true, force: true });
  }
  return out;
}

/**
 * Predict and pipeline on each engine of the frozen base, in the same run: a fresh
 * platform per engine (its own store and embedding cache), the engine forced in this
 * process (predict) and in the job's child process (TL_ENGINE is inherited).
 * `--engine=onnx|tfjs` runs one. The figures of the default engine (onnx) stay at the top level.
 */
async function predictAndPipelineByEngine(sections: Set<string>, embedding: Parameters<typeof benchPredictAndPipeline>[1]) {
  const only = process.argv.find((a) => a.startsWith('--engine='))?.slice('--engine='.length);
  const engines = (['tfjs', 'onnx'] as const).filter((e) => !only || e === only);
  const byEngine: Record<string, Record<string, unknown>> = {};
  const before = process.env.TL_ENGINE;
  try {
    for (const engine of engines) {
      log(`predict/pipeline on the ${engine} engine...`);
      process.env.TL_ENGINE = engine;
      configureEngine({ engine, log });
      byEngine[engine] = await benchPredictAndPipeline(sections, engine === 'onnx' ? embedding : undefined);
    }
  } finally {
    if (before === undefined) delete process.env.TL_ENGINE;
    else process.env.TL_ENGINE = before;
    configureEngine({});
  }
  const get = (e: string, section: string, key: string) => (byEngine[e]?.[section] as Record<string, number> | undefined)?.[key];
  const ratio = (section: string, key: string) => {
    const t = get('tfjs', section, key);
    const o = get('onnx', section, key);
    return t && o ? round(t / o, 1) : undefined;
  };
  return {
    ...(byEngine.onnx ?? byEngine.tfjs),
    byEngine,
    tfjsOverOnnx: { predictP50: ratio('predict', 'p50Ms'), uploadToServable: ratio('pipeline', 'uploadToServableSeconds') },
  };
}

async function main() {
  const all = ['embedding', 'engines', 'head', 'predict', 'pipeline', 'retrain', 'mtl', 'transfer', 'load'];
  const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const sections = new Set(asked.length ? asked : all);
  const { backend, packageName } = await loadTf(log);
  log(`backend: ${backend} (${packageName}) on ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}`);
  const results: Record<string, unknown> = {
    backend,
    tfjsPackage: packageName,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version, platform: process.platform },
    startedAt: new Date().toISOString(),
  };
  let embedding: Awaited<ReturnType<typeof benchEmbedding>> | undefined;
  if (sections.has('embedding') || sections.has('predict') || sections.has('pipeline')) {
    log('embedding: MobileNetV2 forward pass at batch 1 and 32...');
    embedding = await benchEmbedding({ images: 32 });
    results.embedding = embedding;
    log(`embedding: ${embedding.batch1ImagesPerSecond} images/s at batch 1, ${embedding.batch32ImagesPerSecond} at batch 32`);
  }
  if (sections.has('engines')) {
    log('engines: MobileNetV2 on tfjs and on onnxruntime-node at batch 1, 8 and 32...');
    const engines = await benchEngines({ log });
    results.engines = engines;
    log(
      `engines: onnx / tfjs (${engines.tfjs.backend}) = ${Object.entries(engines.onnxOverTfjs)
        .map(([b, r]) => `${r}× at ${b}`)
        .join(', ')}`,
    );
  }
  if (sections.has('head')) {
    log('head: training a head on 1000 cached embeddings...');
    results.headTraining = await benchHeadTraining({ records: 1000, epochs: 10 });
  }
  if (sections.has('predict') || sections.has('pipeline')) Object.assign(results, await predictAndPipelineByEngine(sections, embedding));
  if (sections.has('retrain')) {
    const images = Number(process.env.TL_BENCH_RETRAIN_IMAGES ?? 300);
    results.retrain = await benchRetrain({ images: Number.isInteger(images) && images > 0 ? images : 300, log });
  }
  if (sections.has('mtl') || sections.has('transfer')) ensureFashionMnist(log);
  if (sections.has('mtl')) {
    log('mtl: single-task vs hard vs soft sharing on Fashion-MNIST (fine and coarse labels)...');
    const mtl = await benchMultiTask({ log });
    results.mtl = mtl;
    log(mtlTable(mtl));
  }
  const dir = path.join(here, 'results');
  await mkdir(dir, { recursive: true });
  if (sections.has('transfer')) {
    log('transfer: source model on Fashion-MNIST classes 0-4, target classes 5-9 with 1/5/10/50 images per class...');
    const transfer = await benchTransfer({ log });
    results.transfer = transfer;
    // The table on its own too, next to its chart (bench/results/transfer-curves.png).
    await writeFile(path.join(dir, 'transfer.json'), JSON.stringify(transfer, null, 2));
    if ('table' in transfer && transfer.table) log(transferTable(transfer.table));
  }
  if (sections.has('load')) {
    const seconds = Number(process.argv.find((a) => a.startsWith('--load-seconds='))?.split('=')[1] ?? 20);
    const load = await benchLoad({ seconds, log });
    results.load = load;
    log(loadTable(load));
  }
  results.finishedAt = new Date().toISOString();
  const json = JSON.stringify(results, null, 2);
  await writeFile(path.join(dir, `bench-${results.startedAt as string}.json`.replace(/:/g, '-')), json);
  // latest.json keeps the newest figures of every section: a run of some sections
  // replaces those and keeps the others, each stamped with the run that measured it.
  const latestFile = path.join(dir, 'latest.json');
  const previous = JSON.parse(await readFile(latestFile, 'utf8').catch(() => '{}')) as { sections?: Record<string, unknown> };
  const run = {
    backend,
    tfjsPackage: packageName,
    machine: results.machine,
    startedAt: results.startedAt,
    finishedAt: results.finishedAt,
    loadAverage: loadavg().map((x) => round(x)),
  };
  const measured = Object.fromEntries(
    Object.entries(results)
      .filter(([k]) => !['backend', 'tfjsPackage', 'machine', 'startedAt', 'finishedAt'].includes(k))
      .map(([k, v]) => [k, { run, figures: v }]),
  );
  await writeFile(latestFile, JSON.stringify({ backend, sections: { ...(previous.sections ?? {}), ...measured } }, null, 2));
  process.stdout.write(`${json}\n`);
  log(`written to ${path.relative(process.cwd(), latestFile)} (merged with earlier sections) and a dated copy`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
