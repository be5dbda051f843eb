/**
 * The training job: prepared shards in, a published model version out, as a
 * pipeline of named stages (functions/train/stages), each `(ctx, deps) => ctx'`:
 *
 *   load → embed → search → train → evaluate → compare → gate → publish
 *
 * How the model trains (heads only, fine-tune, continual) is a plan chosen once at
 * load (plans.ts). Every status write goes through one JobProgress; the time of
 * each stage goes into the report. A failure ends in `failed` with a code from
 * the error vocabulary and a message meant for the user, and never touches what
 * is already published.
 */
import { readReport } from '../../shared/data/shards.js';
import { loadEmbedder } from '../../shared/ml/embedder.js';
import { trainModel } from '../../shared/ml/train.js';
import { readJobStatus, jobStatusKey } from '../../shared/jobs/status.js';
import { putJson, type ObjectStore } from '../../shared/ports/object-store.js';
import type { ErrorBody } from '../../shared/schemas/errors.js';
import type { JobStatus } from '../../shared/schemas/job.js';
import type { DatasetReport } from '../../shared/schemas/report.js';
import type { StageName } from '../../shared/schemas/version-report.js';
import type { StageDeps, TrainJobDeps, TrainJobInput } from './context.js';
import { toJobError } from './errors.js';
import { JobProgress, PROGRESS } from './progress.js';
import { compare } from './stages/compare.js';
import { embed } from './stages/embed.js';
import { evaluate } from './stages/evaluate.js';
import { gate } from './stages/gate.js';
import { load } from './stages/load.js';
import { publish } from './stages/publish.js';
import { search } from './stages/search.js';
import { train } from './stages/train.js';

export type { TrainJobDeps, TrainJobInput } from './context.js';
export { checkpointPrefix } from './checkpoint.js';

/** How the job ended, with the milliseconds of each stage it finished (`<stage>Ms`, `totalMs`) for the job's metrics. */
export type TrainJobResult = ({ ok: true; model: string; version: string } | { ok: false; error: ErrorBody }) & { timings?: Record<string, number> };

/** The status phase each stage shows, and the share of the progress bar it ends at. */
const STAGE_STATUS: Record<StageName, { phase: string; done: number }> = {
  load: { phase: 'loading', done: PROGRESS.loaded },
  embed: { phase: 'embedding', done: PROGRESS.embedded },
  search: { phase: 'searching', done: PROGRESS.searched },
  train: { phase: 'training', done: PROGRESS.trained },
  evaluate: { phase: 'evaluating', done: PROGRESS.evaluated },
  compare: { phase: 'comparing', done: PROGRESS.compared },
  gate: { phase: 'gating', done: PROGRESS.gated },
  publish: { phase: 'publishing', done: PROGRESS.published },
};

/** Runs the stages in order; one function so the order reads as the job does. */
async function runStages(
  input: TrainJobInput,
  report: DatasetReport,
  deps: StageDeps,
  stage: <T>(name: StageName, run: () => Promise<T>, opts?: { silent?: boolean }) => Promise<T>,
) {
  const loaded = await stage('load', () => load(input, report, deps));
  const embedded = await stage('embed', () => embed(loaded, deps));
  // A job without candidates passes through the search without showing it as a phase.
  const searched = await stage('search', () => search(embedded, deps), { silent: !embedded.candidates });
  const trained = await stage('train', () => train(searched, deps));
  const evaluated = await stage('evaluate', () => evaluate(trained, deps));
  const compared = await stage('compare', () => compare(evaluated, deps));
  const gated = await stage('gate', () => gate(compared, deps));
  const published = await stage('publish', () => publish(gated, deps));
  return { ...published, model: gated.modelName, promotion: gated.promotion, testMetrics: gated.testMetrics };
}

/**
 * Runs one training job to its end. Never throws for a job failure: it records
 * `failed` with a readable error and returns it (it throws only when the status
 * itself cannot be written).
 */
export async function runTrainingJob(input: TrainJobInput, jobDeps: TrainJobDeps): Promise<TrainJobResult> {
  const { store } = jobDeps;
  const now = jobDeps.now ?? (() => new Date());
  const started = now().getTime();
  const laps: Record<string, number> = {};
  const releases: Array<() => void> = [];
  const progress = new JobProgress(store, input.jobId, now, jobDeps.statusIntervalMs ?? 1000);
  const deps: StageDeps = {
    store,
    log: jobDeps.log ?? (() => {}),
    now,
    trainer: jobDeps.trainer ?? trainModel,
    embedder: jobDeps.embedder ?? ((base, opts) => loadEmbedder(store, base, opts)),
    progress,
    defer: (release) => void releases.push(release),
    timings: () => ({ ...laps, totalMs: now().getTime() - started }),
  };
  const stage = async <T>(name: StageName, run: () => Promise<T>, opts: { silent?: boolean } = {}): Promise<T> => {
    const t = now().getTime();
    if (name !== 'load' && !opts.silent) await progress.update({ phase: STAGE_STATUS[name].phase });
    const out = await run();
    laps[`${name}Ms`] = now().getTime() - t;
    if (name !== 'publish' && !opts.silent) await progress.update({ progress: STAGE_STATUS[name].done });
    return out;
  };

  let report: DatasetReport | undefined;
  try {
    report = await readReport(store, input.preparedPrefix);
    const existing = await ensureStatus(store, input.jobId, report, now);
    if (existing.state === 'succeeded' && existing.version) {
      deps.log(`job ${input.jobId} already succeeded with version ${existing.version}; nothing to do`);
      return { ok: true, model: existing.model, version: existing.version };
    }
    if (existing.state === 'cancelled') {
      deps.log(`job ${input.jobId} was cancelled; not starting`);
      return { ok: false, error: { code: 'JOB_CANCELLED', message: 'the job was cancelled' } };
    }
    await progress.update({ state: 'running', phase: STAGE_STATUS.load.phase, progress: 0, error: undefined });
    const done = await runStages(input, report, deps, stage);
    await progress.update({
      state: 'succeeded',
      phase: 'done',
      progress: PROGRESS.published,
      version: done.version,
      promoted: done.promotion.promote,
      promotionReason: done.promotion.reason,
      metrics: flatMetrics(done.testMetrics),
    });
    return { ok: true, model: done.model, version: done.version, timings: deps.timings() };
  } catch (err) {
    return await recordFailure(err, { input, deps, hasReport: report !== undefined });
  } finally {
    for (const release of releases.reverse()) release();
  }
}

async function recordFailure(err: unknown, job: { input: TrainJobInput; deps: StageDeps; hasReport: boolean }): Promise<TrainJobResult> {
  const { deps, input } = job;
  const error = toJobError(err);
  deps.log(`job ${input.jobId} failed: ${error.code}: ${error.message}`);
  if (err instanceof Error && error.code === 'INTERNAL' && err.stack) deps.log(err.stack);
  try {
    // Without a report there may be no status either; only update one that exists.
    if (job.hasReport || (await readJobStatus(deps.store, input.jobId))) await deps.progress.update({ state: 'failed', error });
  } catch (statusErr) {
    deps.log(`could not record the failure: ${statusErr instanceof Error ? statusErr.message : String(statusErr)}`);
    throw statusErr;
  }
  return { ok: false, error, timings: deps.timings() };
}

/** The status object is written by preprocessing; create it if a job was started by hand. */
async function ensureStatus(store: ObjectStore, jobId: string, report: DatasetReport, now: () => Date): Promise<JobStatus> {
  const current = await readJobStatus(store, jobId);
  if (current) return current;
  const t = now().toISOString();
  const status: JobStatus = {
    jobId,
    model: report.spec.model ?? report.dataset,
    dataset: report.dataset,
    datasetHash: report.hash,
    state: 'submitted',
    progress: 0,
    metrics: {},
    createdAt: t,
    updatedAt: t,
  };
  await putJson(store, jobStatusKey(jobId), status);
  return status;
}

/** `{class: {accuracy: 0.9}}` → `{"test_accuracy": 0.9}` (one task) or `{"test_accuracy_class": 0.9}` for the status' flat metrics. */
function flatMetrics(m: Record<string, Record<string, number>>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(m).flatMap(([task, v]) => Object.entries(v).map(([k, x]) => [`test_${k}${Object.keys(m).length > 1 ? `_${task}` : ''}`, x])),
  );
}
