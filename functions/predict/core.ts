import type { ObjectStore } from '../../shared/ports/object-store.js';
import { ApiError } from '../../shared/http/api.js';
import { NameSchema, VersionOrAliasSchema } from '../../shared/schemas/common.js';
import { JobStatusSchema, type JobStatus } from '../../shared/schemas/job.js';
import type { ModelMetadata } from '../../shared/schemas/model.js';
import type { PredictRequest, PredictResponse, TaskPrediction } from '../../shared/schemas/predict.js';
import { listModels, ModelCorruptError, ModelNotFoundError, resolveModel, type ResolveModelOptions } from '../../shared/models/registry.js';
import { readJobStatus, readLatestJobOfModel } from '../../shared/jobs/status.js';
import { NoPreviousVersionError, rollbackAlias } from '../../shared/models/promotion.js';
import { exportModelToOnnx, NotExportableError } from '../../shared/ml/onnx/model-export.js';
import { UnsupportedLayerError } from '../../shared/ml/onnx/export.js';
import { UnknownTaskError } from '../../shared/ml/predict.js';
import { buildModelCard } from '../../shared/models/model-card.js';

/** A model ready to serve: one forward pass from raw instances to per-task predictions. */
export interface Servable {
  readonly metadata: ModelMetadata;
  predict(request: PredictRequest): Promise<Array<Record<string, TaskPrediction>>>;
  dispose(): void;
}

/** Serves predictions from loaded models, keeping the most recently used in memory. */
export interface ModelCache {
  /** A version's metadata (undefined when it has none), read from the store once and then kept: a version never changes. */
  readVersion(model: string, version: string): Promise<ModelMetadata | undefined>;
  predict(metadata: ModelMetadata, request: PredictRequest): Promise<Array<Record<string, TaskPrediction>>>;
  /**
   * Loads a version and answers one prediction on a blank input, so that its first caller does
   * not wait for the engine, the frozen base's session and the heads to load.
   */
  warm(metadata: ModelMetadata): Promise<void>;
}

export interface ApiDeps {
  store: ObjectStore;
  models: ModelCache;
}

export function checkModelName(model: string | undefined): string {
  if (!model || !NameSchema.safeParse(model).success) {
    throw new ApiError(400, 'INVALID_MODEL_NAME', `invalid model name ${JSON.stringify(model ?? '')}: use letters, digits, "-" or "_"`);
  }
  return model;
}

/** A broken model (unreadable alias or metadata) answers 409 MODEL_BROKEN: the request is fine, the stored model is not. */
function modelApiError(err: unknown): ApiError | undefined {
  if (err instanceof ModelNotFoundError) return new ApiError(404, 'MODEL_NOT_FOUND', err.message);
  if (err instanceof ModelCorruptError) return new ApiError(409, 'MODEL_BROKEN', err.message);
  return undefined;
}

async function resolveOr404(store: ObjectStore, model: string, version?: string, options?: ResolveModelOptions): Promise<ModelMetadata> {
  try {
    return await resolveModel(store, model, version, options);
  } catch (err) {
    throw modelApiError(err) ?? err;
  }
}

export async function predict(model: string, request: PredictRequest, deps: ApiDeps): Promise<PredictResponse> {
  // Only the alias is read per call (a promotion is served at once); the version's metadata is the cache's.
  const metadata = await resolveOr404(deps.store, checkModelName(model), request.version, { readVersion: (m, v) => deps.models.readVersion(m, v) });
  const predictions = await deps.models.predict(metadata, request);
  return { model: metadata.model, version: metadata.version, predictions };
}

/** Headline figure per task of a version: accuracy (classification), micro-F1 (multilabel) or MAE (regression) on the test split. */
export function headline(meta: ModelMetadata): Record<string, { metric: string; value: number }> {
  const out: Record<string, { metric: string; value: number }> = {};
  for (const task of meta.tasks) {
    const m = meta.metrics[task.name] as Record<string, unknown> | undefined;
    const pick = (metric: string) => (typeof m?.[metric] === 'number' ? { metric, value: m[metric] } : undefined);
    const figure = pick('accuracy') ?? pick('microF1') ?? pick('mae');
    if (figure) out[task.name] = figure;
  }
  return out;
}

/** What GET /models lists per model: enough to choose one without a second call. */
function summary(meta: ModelMetadata) {
  return {
    model: meta.model,
    version: meta.version,
    createdAt: meta.createdAt,
    kind: meta.kind,
    input: meta.input,
    base: meta.base.name,
    tasks: meta.tasks.map((t) => ({ name: t.name, type: t.type, auxiliary: t.auxiliary, labels: t.labels })),
    headline: headline(meta),
  };
}

/** The state of a model's latest job, for the models list; a job that cannot be read is left out rather than failing the list. */
async function jobSummary(store: ObjectStore, model: string) {
  const job = await readLatestJobOfModel(store, model).catch(() => undefined);
  return job ? { state: job.state, phase: job.phase, progress: job.progress, updatedAt: job.updatedAt, error: job.error } : undefined;
}

export async function listModelSummaries(deps: Pick<ApiDeps, 'store'>) {
  const names = await listModels(deps.store);
  // A model whose alias points nowhere (deleted by hand) is left out; a broken one
  // (corrupt alias or metadata) is listed with its error, and the others still are.
  // A store failure fails the call: it is not one model's problem.
  const rows = await Promise.all(
    names.map((n) =>
      resolveModel(deps.store, n).then(
        async (meta) => ({ ...summary(meta), job: await jobSummary(deps.store, n) }),
        (err: unknown) => {
          if (err instanceof ModelNotFoundError) return undefined;
          if (err instanceof ModelCorruptError) return { model: n, error: { code: 'MODEL_BROKEN', message: err.message } };
          throw err;
        },
      ),
    ),
  );
  return { models: rows.filter((m) => m !== undefined) };
}

export async function describeModel(model: string, deps: Pick<ApiDeps, 'store'>, version?: string) {
  if (version !== undefined && !VersionOrAliasSchema.safeParse(version).success) {
    throw new ApiError(400, 'INVALID_VERSION', `invalid version ${JSON.stringify(version)}: use a version id or an alias name`);
  }
  const meta = await resolveOr404(deps.store, checkModelName(model), version);
  // What preprocessing used and skipped of the version's data, from its job's status.
  const job = meta.jobId ? await readJobStatus(deps.store, meta.jobId).catch(() => undefined) : undefined;
  return job?.records ? { ...meta, records: job.records } : meta;
}

/**
 * `POST /models/{model}/rollback`: points `latest` back at the version it served
 * before (a second call undoes the first).
 */
export async function rollback(model: string, deps: Pick<ApiDeps, 'store'>) {
  try {
    const r = await rollbackAlias(deps.store, checkModelName(model));
    return { model: r.model, alias: r.alias, version: r.to, previous: r.from };
  } catch (err) {
    if (err instanceof NoPreviousVersionError) throw new ApiError(409, 'NO_PREVIOUS_VERSION', err.message);
    throw modelApiError(err) ?? err;
  }
}

/** The latest training job of a model (what `tl status` shows). */
export async function latestJob(model: string, deps: Pick<ApiDeps, 'store'>): Promise<JobStatus> {
  checkModelName(model);
  const status = await readLatestJobOfModel(deps.store, model);
  if (!status) throw new ApiError(404, 'JOB_NOT_FOUND', `no training job for model ${model}`);
  return JobStatusSchema.parse(status);
}

export interface ExportQuery {
  format?: string;
  version?: string;
  /** Comma-separated task names. @default every non-auxiliary task */
  tasks?: string;
}

/**
 * `GET /models/{model}/export?format=onnx[&version=][&tasks=a,b]`: the model as one
 * self-contained ONNX file (shared/ml/onnx/model-export.ts). 409 when the model
 * cannot be exported (prototype model, `model:` base, a layer without an ONNX mapping).
 */
export async function exportModel(model: string, query: ExportQuery, deps: Pick<ApiDeps, 'store'>): Promise<{ bytes: Uint8Array; filename: string }> {
  const format = query.format ?? 'onnx';
  if (format !== 'onnx') throw new ApiError(400, 'INVALID_REQUEST', `unknown export format ${JSON.stringify(format)}; use "onnx"`);
  if (query.version !== undefined && !VersionOrAliasSchema.safeParse(query.version).success) {
    throw new ApiError(400, 'INVALID_VERSION', `invalid version ${JSON.stringify(query.version)}: use a version id or an alias name`);
  }
  const meta = await resolveOr404(deps.store, checkModelName(model), query.version);
  const tasks = query.tasks === undefined ? undefined : query.tasks.split(',').filter((t) => t.length > 0);
  try {
    return { bytes: await exportModelToOnnx(deps.store, meta, { tasks }), filename: `${meta.model}-${meta.version}.onnx` };
  } catch (err) {
    if (err instanceof UnknownTaskError) throw new ApiError(400, 'UNKNOWN_TASK', err.message);
    if (err instanceof NotExportableError || err instanceof UnsupportedLayerError) throw new ApiError(409, 'UNSUPPORTED_SPEC', err.message);
    throw err;
  }
}

/** `GET /models/{model}/card[?version=]`: the version's model card, markdown. */
export async function modelCard(model: string, deps: Pick<ApiDeps, 'store'>, version?: string): Promise<string> {
  if (version !== undefined && !VersionOrAliasSchema.safeParse(version).success) {
    throw new ApiError(400, 'INVALID_VERSION', `invalid version ${JSON.stringify(version)}: use a version id or an alias name`);
  }
  return buildModelCard(deps.store, await resolveOr404(deps.store, checkModelName(model), version));
}
