/**
 * `npm run bench`: the platform's speed figures on this machine, with the
 * TensorFlow.js backend printed first and everything written to
 * bench/results/latest.json (plus a dated copy). Figures come with a baseline
 * measured in the same run where one makes sense, as ratios.
 *
 * Sections: embedding, head, predict, pipeline, mtl, transfer (default: all). Pick some with
 * `npm run bench -- predict pipeline`. `mtl` compares single-task, hard and soft
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

async function main() {
  const all = ['embedding', 'head', 'predict', 'pipeline', 'mtl', 'transfer'];
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
  if (sections.has('head')) {
    log('head: training a head on 1000 cached embeddings...');
    results.headTraining = await benchHeadTraining({ records: 1000, epochs: 10 });
  }
  if (sections.has('predict') || sections.has('pipeline')) Object.assign(results, await benchPredictAndPipeline(sections, embedding));
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
  results.finishedAt = new Date().toISOString();
  const json = JSON.stringify(results, null, 2);
  await writeFile(path.join(dir, `bench-${results.startedAt as string}.json`.replace(/:/g, '-')), json);
  // latest.json keeps the newest figures of every section: a run of some sections
  // replaces those and keeps the others, each stamped with the run that measured it.
  const latestFile = path.join(dir, 'latest.json');
  const previous = JSON.parse(await readFile(latestFile, 'utf8').catch(() => '{}')) as { sections?: Record<string, unknown> };
  const run = { backend, tfjsPackage: packageName, machine: results.machine, startedAt: results.startedAt, finishedAt: results.finishedAt, loadAverage: loadavg().map((x) => round(x)) };
  const measured = Object.fromEntries(Object.entries(results).filter(([k]) => !['backend', 'tfjsPackage', 'machine', 'startedAt', 'finishedAt'].includes(k)).map(([k, v]) => [k, { run, figures: v }]));
  await writeFile(latestFile, JSON.stringify({ backend, sections: { ...(previous.sections ?? {}), ...measured } }, null, 2));
  process.stdout.write(`${json}\n`);
  log(`written to ${path.relative(process.cwd(), latestFile)} (merged with earlier sections) and a dated copy`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
