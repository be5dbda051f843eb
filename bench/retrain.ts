/**
 * `npm run bench -- retrain`: what the per-image embedding cache buys. A dataset of
 * `images` shapes is uploaded and trained (the cold run, nothing cached), then 1 % more
 * images are uploaded to the same dataset and it is trained again (the re-train). Both
 * go through the embedded platform end to end (upload, preprocess, training job until
 * the job ends) on MobileNetV2, in the same run, so the ratio is read on one machine
 * state. The embed stage's own times and the images the base embedded come from each
 * version's report.json.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateShapesDataset } from '../shared/local/demo-data.js';
import { versionPrefix } from '../shared/models/registry.js';
import { readJson } from '../shared/ports/object-store.js';
import { VersionReportSchema } from '../shared/schemas/version-report.js';
import { readTree, startTestPlatform, type TestPlatform } from '../test/helpers/platform.js';

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

export interface RetrainOptions {
  /** Images of the cold run; the re-train adds 1 % of this (at least 1). @default 300 */
  images?: number;
  /** Epochs of each job: both runs train the same heads the same way. @default 10 */
  epochs?: number;
  log?: (line: string) => void;
}

/** Uploads files (train.json last), waits for the job that starts, and returns its time and report figures. */
async function trainOnce(t: TestPlatform, dataset: string, files: Array<{ path: string; data: Buffer }>) {
  const started = Date.now();
  const t0 = performance.now();
  await t.upload(dataset, files);
  const job = await t.waitForJob(dataset, { since: started - 1000, timeoutMs: 60 * 60_000 });
  const seconds = (performance.now() - t0) / 1000;
  if (job.state !== 'succeeded' || !job.version) throw new Error(`job ${job.state}: ${job.error?.message}`);
  const report = await readJson(t.platform.defaultTenant.store, `${versionPrefix(dataset, job.version)}/report.json`, VersionReportSchema);
  return {
    seconds: round(seconds),
    embedStageSeconds: round((report.timings.embedMs ?? 0) / 1000),
    embeddingCache: report.transfer.embeddingCache,
    imagesEmbedded: report.transfer.embeddingCacheImages?.embedded,
    imagesCached: report.transfer.embeddingCacheImages?.cached,
  };
}

export async function benchRetrain(opts: RetrainOptions = {}) {
  const log = opts.log ?? (() => {});
  const images = opts.images ?? 300;
  const added = Math.max(1, Math.round(images / 100));
  const work = await mkdtemp(path.join(tmpdir(), 'tl-bench-retrain-'));
  const t = await startTestPlatform();
  try {
    const perClass = Math.ceil(images / 3);
    await generateShapesDataset(path.join(work, 'base'), { perClass, seed: 21 });
    await generateShapesDataset(path.join(work, 'more'), { perClass: Math.ceil(added / 3), seed: 22 });
    const base = (await readTree(path.join(work, 'base'))).slice(0, images);
    // The new images under new names, so the first ones stay as they were.
    const more = (await readTree(path.join(work, 'more'))).slice(0, added).map((f) => ({ ...f, path: f.path.replace(/([^/]+)$/, 'added-$1') }));
    const spec = { path: 'train.json', data: Buffer.from(JSON.stringify({ training: { epochs: opts.epochs ?? 10 } })) };

    log(`retrain: cold run on ${base.length} images...`);
    const cold = await trainOnce(t, 'bench-retrain', [...base, spec]);
    log(`retrain: cold ${cold.seconds} s (embed stage ${cold.embedStageSeconds} s, ${cold.imagesEmbedded} embedded); adding ${more.length} images...`);
    const retrain = await trainOnce(t, 'bench-retrain', [...more, spec]);
    log(
      `retrain: re-train ${retrain.seconds} s (embed stage ${retrain.embedStageSeconds} s, ${retrain.imagesEmbedded} embedded, ${retrain.imagesCached} cached)`,
    );
    return {
      images: base.length,
      added: more.length,
      cold,
      retrain,
      retrainOverColdRatio: round(retrain.seconds / cold.seconds, 3),
      embedStageRatio: cold.embedStageSeconds ? round(retrain.embedStageSeconds / cold.embedStageSeconds, 3) : undefined,
    };
  } finally {
    await t.close();
    await rm(work, { recursive: true, force: true });
  }
}
