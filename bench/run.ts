/**
 * `npm run bench`: the platform's speed figures on this machine, with the
 * TensorFlow.js backend printed first and everything written to
 * bench/results/latest.json (plus a dated copy). Figures come with a baseline
 * measured in the same run where one makes sense, as ratios.
 *
 * Sections: embedding, engines, head, predict, busy, pipeline, retrain, mtl, transfer, load (default: all).
 * Pick some with `npm run bench -- predict pipeline`. `engines` times the frozen base on tfjs and on
 * ONNX Runtime side by side (bench/engines.ts). `retrain` times a re-train after adding 1 % of the images
 * against the cold run (bench/retrain.ts; `TL_BENCH_RETRAIN_IMAGES`, default 300). `load` runs the embedded server under autocannon
 * (bench/load.ts); `--load-seconds=N` shortens its 20 s steps for a quick look. `mtl` compares single-task, hard and soft
 * sharing on Fashion-MNIST (bench/mtl.ts; MobileNetV2 embeddings cached in bench/.cache/).
 */
import { cpus, loadavg, tmpdir } from 'node:os';
import { constants as perfConstants, PerformanceObserver } from 'node:perf_hooks';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { loadTf } from '../shared/tf/loader.js';
import { benchEmbedding, benchHeadTraining, ensureFashionMnist } from './ml.js';
import { benchTransfer, transferTable } from './transfer.js';
import { benchMultiTask, mtlTable } from './mtl.js';
import { benchRetrain } from './retrain.js';
import { benchLoad, loadTable } from './load.js';
import { benchEngines } from './engines.js';
import { benchSearch, benchSearchTabular } from './search.js';
import { configureEngine } from '../shared/ml/onnx/runtime.js';
import { generateShapesDataset, generateShapesImages } from '../shared/local/demo-data.js';
import { readTree, startTestPlatform, type TestPlatform } from '../test/helpers/platform.js';
import { decodeImage } from '../shared/data/images.js';
import { resolveBase } from '../shared/ml/base-models.js';
import { loadEmbedder } from '../shared/ml/embedder.js';
import { loadModel } from '../shared/ml/model-io.js';
import { predictTasks } from '../shared/ml/predict.js';
import { resolveModel, versionPrefix } from '../shared/models/registry.js';
import { getJson, type ObjectStore } from '../shared/ports/object-store.js';
import { DEFAULT_JOB_NICENESS } from '../shared/adapters/local/child-process-runner.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const execFileAsync = promisify(execFile);
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const log = (line: string) => process.stderr.write(`${line}\n`);
/** `--name=N` on the command line, when N is a positive number. */
const numberOption = (name: string): number | undefined => {
  const n = Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3));
  return Number.isFinite(n) && n > 0 ? n : undefined;
};

/** Uploads a generated dataset over HTTP and times it until the model answers predict, stage by stage. */
async function uploadAndServe(t: TestPlatform, model: string, perClass: number, work: string, training: Record<string, unknown> = {}, seed = 11) {
  const dir = path.join(work, model);
  // Another seed, other images: a second dataset must not find the first one's embeddings cached.
  await generateShapesDataset(dir, { perClass, seed });
  const files = (await readTree(dir)).filter((f) => f.path !== 'train.json');
  files.push({ path: 'train.json', data: Buffer.from(JSON.stringify({ model, training: { epochs: 20, ...training } })) });
  const probe = (await generateShapesImages({ perClass: 1, seed: 5 }))[0].buffer.toString('base64');
  const t0 = performance.now();
  await t.upload(model, files);
  const uploadedAt = performance.now();
  const uploadedWall = Date.now();
  const job = await t.waitForJob(model, { timeoutMs: 60 * 60_000 });
  const jobEndedAt = performance.now();
  const jobEndedWall = Date.now();
  if (job.state !== 'succeeded') throw new Error(`job ${job.state}: ${job.error?.message}`);
  const res = await t.call('POST', `/models/${model}/predict`, { instances: [{ image: probe }] });
  if (res.status !== 200) throw new Error(`predict answered ${res.status}`);
  const servable = performance.now();
  // The job's own per-stage times, as its version report records them; preprocessing
  // starts when it writes the job status (createdAt) and ends when it writes the
  // dataset report. What is left between that and the job's end is the child process
  // starting (node, tsx, the tfjs and onnx runtimes) and the status being polled.
  const store = t.platform.defaultTenant.store;
  const report = await getJson<{
    timings: Record<string, number>;
    transfer: { baseline?: { epochsRun: number; ms: number } };
    search?: { chosen: string; seconds: number };
  }>(store, `${versionPrefix(model, job.version!)}/report.json`);
  const prepared = await getJson<{ createdAt: string }>(store, `prepared/${job.dataset}/${job.datasetHash}/report.json`);
  const { totalMs, ...jobStages } = report.timings;
  const preprocessStart = Date.parse(job.createdAt);
  const preprocessEnd = Date.parse(prepared.createdAt);
  const stages = {
    uploadMs: round(uploadedAt - t0, 0),
    queueMs: preprocessStart - uploadedWall,
    preprocessMs: preprocessEnd - preprocessStart,
    jobStartAndPollMs: jobEndedWall - preprocessEnd - totalMs,
    ...jobStages,
    firstPredictMs: round(servable - jobEndedAt, 0),
  };
  return {
    images: files.length - 1,
    uploadSeconds: round((uploadedAt - t0) / 1000),
    uploadToServableSeconds: round((servable - t0) / 1000),
    jobTotalMs: totalMs,
    stages,
    baseline: report.transfer.baseline ? { epochsRun: report.transfer.baseline.epochsRun, ms: report.transfer.baseline.ms } : undefined,
    search: report.search ? { chosen: report.search.chosen, seconds: report.search.seconds } : undefined,
    job,
  };
}

/**
 * What predict does for one image in this process without HTTP: embedding and heads
 * (`embedAndHeadsMs`, the issue's baseline), and with the image decode before them
 * (`decodeEmbedAndHeadsMs`); medians over `calls`, after the model is loaded.
 */
async function inProcessPredict(store: ObjectStore, model: string, image: Buffer, calls: number) {
  const meta = await resolveModel(store, model);
  if (meta.input.type !== 'image') throw new Error('the bench model takes images');
  const { cut } = meta.base;
  const embedder = await loadEmbedder(store, await resolveBase(store, meta.base.name), cut ? { embedding: cut } : {});
  const heads = await loadModel(store, versionPrefix(meta.model, meta.version));
  const shape = meta.input.shape;
  try {
    const once = async (pixels?: Uint8Array) => {
      const px = pixels ?? (await decodeImage(image, shape));
      const emb = await embedder.embed(px, 1, { sourceShape: shape });
      await predictTasks(heads, meta.tasks, emb, 1, { topK: 3 });
    };
    const pixels = await decodeImage(image, shape);
    for (let i = 0; i < 3; i++) await once(pixels);
    const embedAndHeads: number[] = [];
    const withDecode: number[] = [];
    for (let i = 0; i < calls; i++) {
      let s = performance.now();
      await once(pixels);
      embedAndHeads.push(performance.now() - s);
      s = performance.now();
      await once();
      withDecode.push(performance.now() - s);
    }
    return { engine: embedder.engine ?? 'tfjs', embedAndHeadsMs: percentile(embedAndHeads, 50), decodeEmbedAndHeadsMs: percentile(withDecode, 50) };
  } finally {
    heads.dispose();
    embedder.dispose();
  }
}

/**
 * `busy`: one-image predicts every 20 ms while a 501-image job trains on the same
 * machine, with the job processes at the runner's default nice value and at the
 * server's own priority, each on a fresh platform (its own store, so neither finds the
 * other's embeddings cached), and the same predicts with no job as the baseline.
 */
async function benchPredictWhileTraining() {
  const rows: Record<string, unknown> = {};
  for (const niceness of [0, DEFAULT_JOB_NICENESS]) {
    const t = await startTestPlatform({ runner: { niceness, onOutput: () => {} } });
    const work = await mkdtemp(path.join(tmpdir(), 'tl-bench-busy-'));
    try {
      await uploadAndServe(t, 'bench-small', 10, work);
      const image = (await generateShapesImages({ perClass: 1, seed: 77 }))[0].buffer;
      const body = { instances: [{ image: image.toString('base64') }] };
      const paced = async (until: () => boolean, at = 0) => {
        const times: number[] = [];
        while (!until() || times.length < at) {
          const s = performance.now();
          const res = await t.call('POST', '/models/bench-small/predict', body);
          times.push(performance.now() - s);
          if (res.status !== 200) throw new Error(`predict answered ${res.status}`);
          await new Promise((r) => setTimeout(r, 20));
        }
        return times;
      };
      // The standby starts 2 s after the job: measured after it has loaded, as the job will be.
      await new Promise((r) => setTimeout(r, 5000));
      const idle = await paced(() => true, 60);
      let done = false;
      const job = uploadAndServe(t, 'bench-busy', 167, work, {}, 13 + niceness).finally(() => (done = true));
      job.catch(() => {}); // awaited below; a failed predict meanwhile must not leave its rejection unhandled
      const during = await paced(() => done);
      const r = await job;
      const figures = (xs: number[]) => ({
        calls: xs.length,
        p50Ms: round(percentile(xs, 50), 1),
        p90Ms: round(percentile(xs, 90), 1),
        p99Ms: round(percentile(xs, 99), 1),
      });
      const row = { idle: figures(idle), whileTraining: figures(during), uploadToServableSeconds: r.uploadToServableSeconds };
      rows[`nice${niceness}`] = row;
      const ms = (f: ReturnType<typeof figures>) => `${f.p50Ms}/${f.p90Ms}/${f.p99Ms} ms`;
      log(
        `busy (job at nice ${niceness}): predict p50/p90/p99 ${ms(row.idle)} idle, ${ms(row.whileTraining)} while the job trained (${during.length} calls); job servable after ${r.uploadToServableSeconds} s`,
      );
    } finally {
      await t.close();
      await rm(work, { recursive: true, force: true });
    }
  }
  return rows;
}

/** Round-trip times of `calls` sequential POSTs from `bench/http-client.ts`, a client in its own process. */
async function externalClient(url: string, apiKey: string, bodyFile: string, calls: number): Promise<number[]> {
  const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', path.join(here, 'http-client.ts'), url, bodyFile, String(calls)], {
    cwd: path.join(here, '..'),
    env: { ...process.env, TL_API_KEY: apiKey }, // not on the command line, where `ps` shows it
    maxBuffer: 1 << 20,
  });
  return (JSON.parse(stdout) as { times: number[] }).times;
}

/**
 * One-image predicts over HTTP from this process and from a client in its own process, and
 * the same model's embedding + heads in this process, alternating in three blocks.
 */
async function timePredicts(t: TestPlatform, image: Buffer, body: unknown, work: string) {
  // HTTP calls and in-process calls alternate in blocks, so both see the same load.
  const times: number[] = [];
  const inProcess: Array<Awaited<ReturnType<typeof inProcessPredict>>> = [];
  // Full (mark-compact) collections while the HTTP calls run: each holds the event loop
  // 20–30 ms, so they make the p99 (shared/heap.ts). Entries reach the observer later
  // than they happen, so they are matched to the blocks' time windows by their start.
  const majorGcStarts: number[] = [];
  const windows: Array<[number, number]> = [];
  const gcs = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) majorGcStarts.push(e.startTime);
  });
  gcs.observe({ entryTypes: ['gc'] });
  // The same calls from a client in its own process, as a real caller is.
  const bodyFile = path.join(work, 'predict-body.json');
  await writeFile(bodyFile, JSON.stringify(body));
  const external: number[] = [];
  try {
    for (let block = 0; block < 3; block++) {
      const from = performance.now();
      for (let i = 0; i < 60; i++) {
        const s = performance.now();
        const res = await t.call('POST', '/models/bench-small/predict', body);
        times.push(performance.now() - s);
        if (res.status !== 200) throw new Error(`predict answered ${res.status}`);
      }
      windows.push([from, performance.now()]);
      external.push(...(await externalClient(`${t.platform.url}/models/bench-small/predict`, t.apiKey, bodyFile, 60)));
      inProcess.push(await inProcessPredict(t.platform.defaultTenant.store, 'bench-small', image, 20));
    }
    await new Promise((r) => setImmediate(r)); // the last block's entries are delivered
  } finally {
    gcs.disconnect();
  }
  const majorGcs = majorGcStarts.filter((at) => windows.some(([from, to]) => at >= from && at <= to)).length;
  return { times, external, inProcess, majorGcs };
}

async function benchPredictAndPipeline(sections: Set<string>) {
  const out: Record<string, unknown> = {};
  const t = await startTestPlatform();
  const work = await mkdtemp(path.join(tmpdir(), 'tl-bench-'));
  try {
    if (sections.has('predict')) {
      log('predict: training a small model to call...');
      await uploadAndServe(t, 'bench-small', 10, work);
      const image = (await generateShapesImages({ perClass: 1, seed: 77 }))[0].buffer;
      const body = { instances: [{ image: image.toString('base64') }] };
      // Steady state: 2 s after a job ends the runner starts the next standby job process, which
      // loads node, tsx and the job's modules for about a second; measured once it has.
      await new Promise((r) => setTimeout(r, 5000));
      for (let i = 0; i < 3; i++) await t.call('POST', '/models/bench-small/predict', body); // warm the model cache
      const { times, external, inProcess, majorGcs } = await timePredicts(t, image, body, work);
      // The same model with an image already at its input size (what the export contract asks
      // of clients): no resize in the decode. The shape's own pixels differ; its decode is what matters.
      const sized = (await generateShapesImages({ perClass: 1, seed: 77, minSize: 224, maxSize: 224, formats: ['jpeg'] }))[0].buffer;
      const sizedBody = { instances: [{ image: sized.toString('base64') }] };
      const sizedTimes: number[] = [];
      for (let i = 0; i < 60; i++) {
        const s = performance.now();
        const res = await t.call('POST', '/models/bench-small/predict', sizedBody);
        sizedTimes.push(performance.now() - s);
        if (res.status !== 200) throw new Error(`predict answered ${res.status}`);
      }
      const p50 = percentile(times, 50);
      const base = percentile(
        inProcess.map((r) => r.embedAndHeadsMs),
        50,
      );
      const withDecode = percentile(
        inProcess.map((r) => r.decodeEmbedAndHeadsMs),
        50,
      );
      out.predict = {
        engine: inProcess[0].engine,
        requests: times.length,
        p50Ms: round(p50, 1),
        p90Ms: round(percentile(times, 90), 1),
        p99Ms: round(percentile(times, 99), 1),
        majorGcs,
        externalClient: {
          requests: external.length,
          p50Ms: round(percentile(external, 50), 1),
          p90Ms: round(percentile(external, 90), 1),
          p99Ms: round(percentile(external, 99), 1),
          p50OverInProcessRatio: round(percentile(external, 50) / base),
        },
        inProcessEmbedAndHeadsMs: round(base, 1),
        inProcessDecodeEmbedAndHeadsMs: round(withDecode, 1),
        p50OverInProcessRatio: round(p50 / base),
        fasterThan94MsBaseline: round(94 / p50, 1),
        imageAtInputSize: {
          requests: sizedTimes.length,
          p50Ms: round(percentile(sizedTimes, 50), 1),
          p50OverInProcessRatio: round(percentile(sizedTimes, 50) / base),
        },
      };
      log(
        `predict (${inProcess[0].engine}): p50 ${round(p50, 1)} ms, p90 ${round(percentile(times, 90), 1)} ms, p99 ${round(percentile(times, 99), 1)} ms over HTTP (${times.length} calls, ${majorGcs} full GCs); from a client in its own process p50 ${round(percentile(external, 50), 1)} ms, p99 ${round(percentile(external, 99), 1)} ms (${round(percentile(external, 50) / base)}×); in process ${round(base, 1)} ms embed + heads (${round(withDecode, 1)} ms with decode): ${round(p50 / base)}×; a JPEG already 224×224: p50 ${round(percentile(sizedTimes, 50), 1)} ms (${round(percentile(sizedTimes, 50) / base)}×)`,
      );
    }
    if (sections.has('busy')) {
      log('busy: predicts while a 500-image job trains, the job at the server’s priority and below it...');
      out.busy = await benchPredictWhileTraining();
    }
    if (sections.has('pipeline')) {
      log('pipeline: 500-image dataset, upload to servable model...');
      const r = await uploadAndServe(t, 'bench-500', 167, work);
      out.pipeline = {
        images: r.images,
        uploadSeconds: r.uploadSeconds,
        uploadToServableSeconds: r.uploadToServableSeconds,
        fasterThan54sBaseline: round(54 / r.uploadToServableSeconds, 1),
        stagesMs: r.stages,
        baseline: r.baseline,
        search: r.search,
        testMetrics: (await t.call('GET', '/models/bench-500')).body.metrics,
      };
      log(`pipeline: ${r.images} images servable after ${r.uploadToServableSeconds} s; stages (ms): ${JSON.stringify(r.stages)}`);
      // The same without the representation search, in the same run: what the search costs.
      const off = await uploadAndServe(t, 'bench-500-off', 167, work, { search: 'off' }, 12);
      (out.pipeline as Record<string, unknown>).searchOff = {
        uploadToServableSeconds: off.uploadToServableSeconds,
        stagesMs: off.stages,
        baseline: off.baseline,
      };
      (out.pipeline as Record<string, unknown>).searchCostRatio = round(r.uploadToServableSeconds / off.uploadToServableSeconds);
      log(
        `pipeline without the search: ${off.uploadToServableSeconds} s (with it: ${round(r.uploadToServableSeconds / off.uploadToServableSeconds)}×); stages (ms): ${JSON.stringify(off.stages)}`,
      );
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
 * `--engine=onnx|tfjs` runs one. The figures of the default engine (onnx) stay at the top level
 * (`--engine=tfjs` updates only `byEngine`).
 */
async function predictAndPipelineByEngine(sections: Set<string>) {
  const only = process.argv.find((a) => a.startsWith('--engine='))?.slice('--engine='.length);
  const engines = (['tfjs', 'onnx'] as const).filter((e) => !only || e === only);
  const byEngine: Record<string, Record<string, unknown>> = {};
  const before = process.env.TL_ENGINE;
  try {
    for (const engine of engines) {
      log(`predict/pipeline on the ${engine} engine...`);
      process.env.TL_ENGINE = engine;
      configureEngine({ engine, log });
      byEngine[engine] = await benchPredictAndPipeline(sections);
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
    ...byEngine.onnx,
    byEngine,
    tfjsOverOnnx: { predictP50: ratio('predict', 'p50Ms'), uploadToServable: ratio('pipeline', 'uploadToServableSeconds') },
  };
}

async function main() {
  const all = ['embedding', 'engines', 'head', 'predict', 'busy', 'pipeline', 'retrain', 'mtl', 'transfer', 'load', 'search'];
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
  if (sections.has('embedding')) {
    log('embedding: MobileNetV2 forward pass at batch 1 and 32...');
    embedding = await benchEmbedding({ images: numberOption('engine-images'), rounds: numberOption('rounds') });
    results.embedding = embedding;
    log(`embedding: ${embedding.batch1ImagesPerSecond} images/s at batch 1, ${embedding.batch32ImagesPerSecond} at batch 32`);
  }
  if (sections.has('engines')) {
    log('engines: MobileNetV2 on tfjs and on onnxruntime-node at batch 1, 8 and 32...');
    const engines = await benchEngines({ images: numberOption('engine-images'), rounds: numberOption('rounds'), log });
    results.engines = engines;
    log(
      `engines (median of ${engines.rounds} rounds of ${engines.imagesPerBatchSize} images): onnx / tfjs (${engines.tfjs.backend}) = ${Object.entries(
        engines.onnxOverTfjs,
      )
        .map(([b, r]) => `${r}× at ${b}`)
        .join(', ')}`,
    );
  }
  if (sections.has('head')) {
    log('head: training a head on 1000 cached embeddings...');
    results.headTraining = await benchHeadTraining({ records: 1000, epochs: 10 });
  }
  if (sections.has('predict') || sections.has('pipeline') || sections.has('busy')) Object.assign(results, await predictAndPipelineByEngine(sections));
  if (sections.has('retrain')) {
    const images = Number(process.env.TL_BENCH_RETRAIN_IMAGES ?? 300);
    results.retrain = await benchRetrain({ images: Number.isInteger(images) && images > 0 ? images : 300, log });
  }
  if (sections.has('mtl') || sections.has('transfer') || sections.has('search')) ensureFashionMnist(log);
  if (sections.has('search')) {
    const perClass = process.argv.find((a) => a.startsWith('--search-per-class='))?.split('=')[1];
    const options = { perClass: perClass ? perClass.split(',').map(Number) : undefined, seeds: numberOption('search-seeds'), log };
    // `--search-multitask-only`: just the multi-task rows (the single-task ones take ~15 minutes).
    if (!process.argv.includes('--search-multitask-only')) {
      log("search: the job's representation search against every candidate alone and the CV logistic reference, Fashion-MNIST...");
      results.search = await benchSearch(options);
    }
    const digits = process.argv.find((a) => a.startsWith('--digits='))?.split('=')[1];
    if (digits) {
      log('search: tabular data (digits), linear vs hidden head, against the CV logistic reference...');
      results.searchTabular = await benchSearchTabular({ file: digits, seeds: options.seeds, log });
    }
    if (process.argv.includes('--search-multitask') || process.argv.includes('--search-multitask-only')) {
      log('search: the same, multi-task (fine and coarse labels) at 30 per class...');
      results.searchMultiTask = await benchSearch({ ...options, perClass: [30], multiTask: true });
    }
  }
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
      .map(([k, v]) => [k, mergeByEngine(k, previous.sections?.[k] as Stamped | undefined, { run, figures: v as Record<string, unknown> })]),
  );
  if (measured.byEngine) measured.tfjsOverOnnx = ratiosOf(measured.byEngine);
  await writeFile(latestFile, JSON.stringify({ backend, sections: { ...(previous.sections ?? {}), ...measured } }, null, 2));
  process.stdout.write(`${json}\n`);
  log(`written to ${path.relative(process.cwd(), latestFile)} (merged with earlier sections) and a dated copy`);
}

interface Stamped {
  run: unknown;
  figures: Record<string, unknown>;
  /** When the run that measured each entry started, where entries of several runs are kept side by side. */
  runs?: Record<string, unknown>;
}

/**
 * `byEngine` (per engine, per section) keeps the entries a run did not measure: `-- predict`
 * alone keeps the `pipeline` figures of the run before, and `runs` gives the start of the run
 * that measured each entry. Every other section is replaced whole.
 */
function mergeByEngine(name: string, previous: Stamped | undefined, next: Stamped): Stamped {
  if (name !== 'byEngine') return next;
  const prev: Stamped = previous ?? { run: next.run, figures: {}, runs: {} };
  const startOf = (run: unknown) => (run as { startedAt?: string }).startedAt;
  const keysOf = (figures: Record<string, unknown>) => Object.entries(figures).flatMap(([e, f]) => Object.keys(f as object).map((k) => `${e}.${k}`));
  const figures: Record<string, unknown> = Object.fromEntries(
    [...new Set([...Object.keys(prev.figures), ...Object.keys(next.figures)])].map((e) => [
      e,
      { ...(prev.figures[e] as object | undefined), ...(next.figures[e] as object | undefined) },
    ]),
  );
  const runs = {
    ...(prev.runs ?? Object.fromEntries(keysOf(prev.figures).map((k) => [k, startOf(prev.run)]))),
    ...Object.fromEntries(keysOf(next.figures).map((k) => [k, startOf(next.run)])),
  };
  return { run: next.run, figures, runs };
}

/**
 * tfjs over onnx from the merged `byEngine`: each ratio from the two engines' latest figures,
 * with the start of the run(s) that measured its two sides (a one-engine run changes one side).
 */
function ratiosOf(byEngine: Stamped): Stamped {
  const side = (engine: string, section: string, key: string) =>
    (byEngine.figures[engine] as Record<string, Record<string, number>> | undefined)?.[section]?.[key];
  const figures: Record<string, number> = {};
  const runs: Record<string, unknown> = {};
  for (const [name, section, key] of [
    ['predictP50', 'predict', 'p50Ms'],
    ['uploadToServable', 'pipeline', 'uploadToServableSeconds'],
  ] as const) {
    const t = side('tfjs', section, key);
    const o = side('onnx', section, key);
    if (!t || !o) continue;
    figures[name] = round(t / o, 1);
    runs[name] = [...new Set([byEngine.runs?.[`tfjs.${section}`], byEngine.runs?.[`onnx.${section}`]])];
  }
  return { run: byEngine.run, figures, runs };
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
