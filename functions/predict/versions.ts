/**
 * What the dashboard reads of a model beyond its serving version: every version
 * with its headline metrics and aliases, a version's report.json and the dataset
 * it was trained on, and promoting a chosen version to `latest`.
 */
import { ApiError } from '../../shared/http/api.js';
import { readJsonIfExists, type ObjectStore } from '../../shared/ports/object-store.js';
import {
  listVersions,
  ModelCorruptError,
  ModelNotFoundError,
  readAlias,
  readMetadata,
  resolveModel,
  setAlias,
  versionPrefix,
} from '../../shared/models/registry.js';
import { CANDIDATE_ALIAS } from '../../shared/models/promotion.js';
import { VersionOrAliasSchema } from '../../shared/schemas/common.js';
import { DatasetReportSchema } from '../../shared/schemas/report.js';
import { VersionReportSchema, type VersionReport } from '../../shared/schemas/version-report.js';
import type { ModelMetadata } from '../../shared/schemas/model.js';
import { checkModelName, headline } from './core.js';

/** Versions listed per call, newest first: a model retrained every hour for a week stays one cheap call. */
export const MAX_VERSIONS_LISTED = 100;
/** Skipped files named by the dataset view (the prepared report keeps them all). */
export const MAX_SKIPPED_LISTED = 100;

/** Aliases the dashboard shows beside versions. */
const SHOWN_ALIASES = ['latest', CANDIDATE_ALIAS, 'stable'];

function checkVersion(version: string | undefined): string {
  if (!version || !VersionOrAliasSchema.safeParse(version).success) {
    throw new ApiError(400, 'INVALID_VERSION', `invalid version ${JSON.stringify(version ?? '')}: use a version id or an alias name`);
  }
  return version;
}

function mapModelError(err: unknown, notFound: 'MODEL_NOT_FOUND' | 'VERSION_NOT_FOUND'): unknown {
  if (err instanceof ModelNotFoundError) return new ApiError(404, notFound, err.message);
  if (err instanceof ModelCorruptError) return new ApiError(409, 'MODEL_BROKEN', err.message);
  return err;
}

/** `GET /models/{model}/versions`: newest first, with the aliases pointing at each. */
export async function listModelVersions(model: string, deps: { store: ObjectStore }) {
  checkModelName(model);
  const aliases: Record<string, string> = {};
  try {
    for (const name of SHOWN_ALIASES) {
      const alias = await readAlias(deps.store, model, name);
      if (alias) aliases[name] = alias.version;
    }
  } catch (err) {
    throw mapModelError(err, 'MODEL_NOT_FOUND');
  }
  const all = (await listVersions(deps.store, model)).reverse();
  if (!all.length && !aliases.latest) throw new ApiError(404, 'MODEL_NOT_FOUND', `no model named ${model}`);
  const shown = all.slice(0, MAX_VERSIONS_LISTED);
  const versions = await Promise.all(
    shown.map(async (version) => {
      const at = Object.entries(aliases)
        .filter(([, v]) => v === version)
        .map(([a]) => a);
      try {
        const meta = await readMetadata(deps.store, model, version);
        if (!meta) return { version, aliases: at, error: { code: 'MODEL_BROKEN', message: 'metadata.json is missing' } };
        return {
          version,
          aliases: at,
          createdAt: meta.createdAt,
          kind: meta.kind,
          jobId: meta.jobId,
          dataset: meta.dataset.name,
          base: meta.base.name,
          tasks: meta.tasks.map((t) => t.name),
          headline: headline(meta),
        };
      } catch (err) {
        if (err instanceof ModelCorruptError) return { version, aliases: at, error: { code: 'MODEL_BROKEN', message: err.message } };
        throw err;
      }
    }),
  );
  return { model, aliases, total: all.length, versions };
}

async function resolveVersion(store: ObjectStore, model: string, version: string | undefined): Promise<ModelMetadata> {
  try {
    return await resolveModel(store, checkModelName(model), checkVersion(version));
  } catch (err) {
    throw mapModelError(err, 'VERSION_NOT_FOUND');
  }
}

/**
 * `GET /models/{model}/versions/{version}/report`: the version's report.json read
 * through VersionReportSchema. A prototype version (no training job) has none: 404.
 */
export async function versionReport(model: string, version: string | undefined, deps: { store: ObjectStore }): Promise<VersionReport> {
  const meta = await resolveVersion(deps.store, model, version);
  const key = `${versionPrefix(meta.model, meta.version)}/report.json`;
  let report: VersionReport | undefined;
  try {
    report = await readJsonIfExists(deps.store, key, VersionReportSchema);
  } catch (err) {
    throw new ApiError(409, 'MODEL_BROKEN', `model ${meta.model} version ${meta.version}: ${key} cannot be read (${(err as Error).message.slice(0, 300)})`);
  }
  if (!report)
    throw new ApiError(
      404,
      'REPORT_NOT_FOUND',
      `model ${meta.model} version ${meta.version} has no report (${meta.kind} models made without a training job have none)`,
    );
  return report;
}

/**
 * `GET /models/{model}/versions/{version}/dataset`: what the version was trained
 * on (records per split, per class, files skipped and why), from the prepared
 * dataset's report.
 */
export async function versionDataset(model: string, version: string | undefined, deps: { store: ObjectStore }) {
  const meta = await resolveVersion(deps.store, model, version);
  const key = `prepared/${meta.dataset.name}/${meta.dataset.hash}/report.json`;
  const report = await readJsonIfExists(deps.store, key, DatasetReportSchema).catch(() => undefined);
  if (!report) throw new ApiError(404, 'REPORT_NOT_FOUND', `the prepared data of model ${meta.model} version ${meta.version} is no longer stored`);
  return {
    dataset: report.dataset,
    hash: report.hash,
    layout: report.layout,
    records: report.records,
    splits: report.splits,
    tasks: report.tasks,
    skipped: report.skipped.slice(0, MAX_SKIPPED_LISTED),
    createdAt: report.createdAt,
  };
}

/**
 * `POST /models/{model}/promote {"version"}`: points `latest` at a chosen version
 * (a candidate the gate refused, or an older one); `rollback` undoes it.
 */
export async function promoteVersion(model: string, version: string, deps: { store: ObjectStore }) {
  const meta = await resolveVersion(deps.store, model, version);
  try {
    const before = await readAlias(deps.store, meta.model, 'latest');
    await setAlias(deps.store, meta.model, 'latest', meta.version);
    return { model: meta.model, alias: 'latest', version: meta.version, previous: before?.version };
  } catch (err) {
    throw mapModelError(err, 'MODEL_NOT_FOUND');
  }
}
