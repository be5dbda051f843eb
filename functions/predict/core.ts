import type { ObjectStore } from '../../shared/ports/object-store.js';
import { ApiError } from '../../shared/http/api.js';
import { NameSchema, VersionOrAliasSchema } from '../../shared/schemas/common.js';
import { JobStatusSchema, type JobStatus } from '../../shared/schemas/job.js';
import type { ModelMetadata } from '../../shared/schemas/model.js';
import type { PredictRequest, PredictResponse, TaskPrediction } from '../../shared/schemas/predict.js';
import { listModels, ModelNotFoundError, resolveModel } from '../../shared/models/registry.js';
import { readLatestJobOfModel } from '../../shared/jobs/status.js';
import { NoPreviousVersionError, rollbackAlias } from '../../shared/models/promotion.js';

/** A model ready to serve: one forward pass from raw instances to per-task predictions. */
export interface Servable {
  readonly metadata: ModelMetadata;
  predict(request: PredictRequest): Promise<Array<Record<string, TaskPrediction>>>;
  dispose(): void;
}

/** Serves predictions from loaded models, keeping the most recently used in memory. */
export interface ModelCache {
  predict(metadata: ModelMetadata, request: PredictRequest): Promise<Array<Record<string, TaskPrediction>>>;
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

async function resolveOr404(store: ObjectStore, model: string, version?: string): Promise<ModelMetadata> {
  try {
    return await resolveModel(store, model, version);
  } catch (err) {
    if (err instanceof ModelNotFoundError) throw new ApiError(404, 'MODEL_NOT_FOUND', err.message);
    throw err;
  }
}

export async function predict(model: string, request: PredictRequest, deps: ApiDeps): Promise<PredictResponse> {
  const metadata = await resolveOr404(deps.store, checkModelName(model), request.version);
  const predictions = await deps.models.predict(metadata, request);
  return { model: metadata.model, version: metadata.version, predictions };
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
  };
}

export async function listModelSummaries(deps: Pick<ApiDeps, 'store'>) {
  const names = await listModels(deps.store);
  // A model whose alias points nowhere (deleted by hand) is left out; any other
  // error (a corrupt metadata file, a store failure) is reported, not hidden.
  const metas = await Promise.all(names.map((n) => resolveModel(deps.store, n).catch((err) => {
    if (err instanceof ModelNotFoundError) return undefined;
    throw err;
  })));
  return { models: metas.filter((m): m is ModelMetadata => Boolean(m)).map(summary) };
}

export async function describeModel(model: string, deps: Pick<ApiDeps, 'store'>, version?: string) {
  if (version !== undefined && !VersionOrAliasSchema.safeParse(version).success) {
    throw new ApiError(400, 'INVALID_VERSION', `invalid version ${JSON.stringify(version)}: use a version id or an alias name`);
  }
  const meta = await resolveOr404(deps.store, checkModelName(model), version);
  return meta;
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
    if (err instanceof ModelNotFoundError) throw new ApiError(404, 'MODEL_NOT_FOUND', err.message);
    if (err instanceof NoPreviousVersionError) throw new ApiError(409, 'NO_PREVIOUS_VERSION', err.message);
    throw err;
  }
}

/** The latest training job of a model (what `tl status` shows). */
export async function latestJob(model: string, deps: Pick<ApiDeps, 'store'>): Promise<JobStatus> {
  checkModelName(model);
  const status = await readLatestJobOfModel(deps.store, model);
  if (!status) throw new ApiError(404, 'JOB_NOT_FOUND', `no training job for model ${model}`);
  return JobStatusSchema.parse(status);
}
