import { randomBytes } from 'node:crypto';
import { getJsonIfExists, putJson, type ObjectStore } from '../ports/object-store.js';
import { AliasSchema, ModelMetadataSchema, type Alias, type ModelMetadata } from '../schemas/model.js';
import { NameSchema } from '../schemas/common.js';

/**
 * Model versions live in `models/<model>/<version>/`; aliases in
 * `models/<model>/aliases/<alias>.json`. A version folder is written whole
 * (metadata.json last) before any alias points at it, and readers only follow
 * aliases or explicit versions, so a half-written version is never served.
 */
export const versionPrefix = (model: string, version: string) => `models/${model}/${version}`;
export const aliasKey = (model: string, alias: string) => `models/${model}/aliases/${alias}.json`;

export class ModelNotFoundError extends Error {
  override name = 'ModelNotFoundError';
}

/** A stored alias or metadata file of a model cannot be read (not JSON, or not its schema): that model alone is broken. */
export class ModelCorruptError extends Error {
  override name = 'ModelCorruptError';
  constructor(
    readonly model: string,
    readonly key: string,
    detail: string,
  ) {
    super(`model ${model} is broken: ${key} cannot be read (${detail}); roll back, promote another version or train it again`);
  }
}

/** Reads a stored JSON file through its schema; a file that is there but unreadable is a ModelCorruptError. */
async function readStored<T>(
  store: ObjectStore,
  model: string,
  key: string,
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: Array<{ path: PropertyKey[]; message: string }> } } },
): Promise<T | undefined> {
  let raw: unknown;
  try {
    raw = await getJsonIfExists(store, key);
  } catch (err) {
    if (err instanceof SyntaxError) throw new ModelCorruptError(model, key, 'not valid JSON');
    throw err;
  }
  if (raw === undefined) return undefined;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelCorruptError(model, key, issue ? `${issue.path.map(String).join('.') || 'file'}: ${issue.message}` : 'does not match its schema');
  }
  return parsed.data;
}

/** A new version id; ids sort by creation time. */
export function newVersionId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `v${stamp}-${randomBytes(3).toString('hex')}`;
}

/** @throws ModelCorruptError when the alias file is there but unreadable */
export async function readAlias(store: ObjectStore, model: string, alias: string): Promise<Alias | undefined> {
  return readStored(store, model, aliasKey(model, alias), AliasSchema);
}

/** Points an alias at a version, remembering the version it pointed at before (for rollback). */
export async function setAlias(store: ObjectStore, model: string, alias: string, version: string): Promise<Alias> {
  const current = await readAlias(store, model, alias);
  const next: Alias = { version, previous: current?.version !== version ? current?.version : current?.previous, updatedAt: new Date().toISOString() };
  await putJson(store, aliasKey(model, alias), next);
  return next;
}

/** @throws ModelCorruptError when the metadata file is there but unreadable */
export async function readMetadata(store: ObjectStore, model: string, version: string): Promise<ModelMetadata | undefined> {
  return readStored(store, model, `${versionPrefix(model, version)}/metadata.json`, ModelMetadataSchema);
}

export interface ResolveModelOptions {
  /**
   * Reads a version's metadata; a caller that keeps versions loaded passes a cached
   * reader (a version folder never changes once an alias can point at it).
   * @default readMetadata
   */
  readVersion?: (model: string, version: string) => Promise<ModelMetadata | undefined>;
}

/**
 * Resolves `latest`, another alias, or an explicit version to the metadata of a
 * complete version. An alias is read on every call, so a promotion or a rollback
 * is seen at once.
 * @throws ModelNotFoundError when the model, alias or version does not exist.
 * @throws ModelCorruptError when its alias or metadata file is unreadable.
 */
export async function resolveModel(store: ObjectStore, model: string, versionOrAlias = 'latest', options: ResolveModelOptions = {}): Promise<ModelMetadata> {
  if (!NameSchema.safeParse(model).success) throw new ModelNotFoundError(`no model named ${JSON.stringify(model)}`);
  let version = versionOrAlias;
  if (!/^v\d{14}-[0-9a-f]{6}$/.test(versionOrAlias)) {
    const alias = await readAlias(store, model, versionOrAlias);
    if (!alias) throw new ModelNotFoundError(`model ${model} has no version "${versionOrAlias}"`);
    version = alias.version;
  }
  const meta = options.readVersion ? await options.readVersion(model, version) : await readMetadata(store, model, version);
  if (!meta) throw new ModelNotFoundError(`model ${model} has no version ${version}`);
  return meta;
}

/** Names of the models that have a `latest` alias. */
export async function listModels(store: ObjectStore): Promise<string[]> {
  const keys = await store.list('models/');
  const names = new Set<string>();
  for (const { key } of keys) {
    const m = /^models\/([^/]+)\/aliases\/latest\.json$/.exec(key);
    if (m) names.add(m[1]);
  }
  return [...names].sort();
}

/** Versions of a model that have complete metadata, oldest first. */
export async function listVersions(store: ObjectStore, model: string): Promise<string[]> {
  const keys = await store.list(`models/${model}/`);
  return keys
    .map(({ key }) => /^models\/[^/]+\/(v\d{14}-[0-9a-f]{6})\/metadata\.json$/.exec(key)?.[1])
    .filter((v): v is string => Boolean(v))
    .sort();
}

export async function writeMetadata(store: ObjectStore, meta: ModelMetadata): Promise<void> {
  await putJson(store, `${versionPrefix(meta.model, meta.version)}/metadata.json`, ModelMetadataSchema.parse(meta));
}
