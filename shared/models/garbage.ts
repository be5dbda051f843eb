import type { ObjectInfo, ObjectStore } from '../ports/object-store.js';
import { getJsonIfExists } from '../ports/object-store.js';
import { AliasSchema, ModelMetadataSchema } from '../schemas/model.js';
import { JobStatusSchema, TERMINAL_STATES } from '../schemas/job.js';

/**
 * What interrupted work leaves in a bucket, and what may go:
 * - a version folder without `metadata.json` (a job killed or out of space while
 *   publishing) that no alias names: it was never complete, so never served;
 * - a `prepared/<dataset>/<hash>/` copy that no unfinished job needs, that no
 *   version an alias points at (or could roll back to) was trained on, and that is
 *   not the newest copy of its dataset.
 * Complete versions are never deleted, nor anything an alias names. Run it only
 * when no job is publishing: a version being written has no metadata yet either.
 * (On AWS the bucket's lifecycle rules expire prepared data and checkpoints.)
 */
export interface GarbageReport {
  incompleteVersions: string[];
  preparedCopies: string[];
  objectsDeleted: number;
}

const VERSION_FILE = /^models\/([^/]+)\/(v\d{14}-[0-9a-f]{6})\/(.+)$/;
const ALIAS_FILE = /^models\/([^/]+)\/aliases\/[^/]+\.json$/;
const PREPARED_FILE = /^prepared\/([^/]+)\/([^/]+)\/(.+)$/;
const STATUS_FILE = /^jobs\/[^/]+\/status\.json$/;

async function parsed<T>(
  store: ObjectStore,
  key: string,
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } },
): Promise<T | undefined> {
  try {
    const r = schema.safeParse(await getJsonIfExists(store, key));
    return r.success ? r.data : undefined;
  } catch {
    // A corrupt file is reported elsewhere; here it only means "keep what it might name".
    return undefined;
  }
}

export async function collectGarbage(store: ObjectStore): Promise<GarbageReport> {
  const report: GarbageReport = { incompleteVersions: [], preparedCopies: [], objectsDeleted: 0 };
  const models = await store.list('models/');

  // Versions: group files per version folder; remember which are complete and which aliases name.
  const versions = new Map<string, { files: ObjectInfo[]; complete: boolean }>();
  const named = new Set<string>();
  let unreadableAlias = false;
  for (const o of models) {
    const v = VERSION_FILE.exec(o.key);
    if (v) {
      const id = `${v[1]}/${v[2]}`;
      const entry = versions.get(id) ?? { files: [], complete: false };
      entry.files.push(o);
      if (v[3] === 'metadata.json') entry.complete = true;
      versions.set(id, entry);
    } else if (ALIAS_FILE.test(o.key)) {
      const alias = await parsed(store, o.key, AliasSchema);
      const model = ALIAS_FILE.exec(o.key)![1];
      if (!alias) unreadableAlias = true;
      for (const version of [alias?.version, alias?.previous]) if (version) named.add(`${model}/${version}`);
    }
  }
  for (const [id, entry] of versions) {
    // With an alias unreadable we cannot tell what it names: delete nothing of that kind.
    if (entry.complete || named.has(id) || unreadableAlias) continue;
    for (const f of entry.files) await store.delete(f.key);
    report.incompleteVersions.push(id);
    report.objectsDeleted += entry.files.length;
  }

  // Prepared copies still needed: by unfinished jobs, by named versions, and the newest per dataset.
  const keep = new Set<string>();
  let unreadableStatus = false;
  for (const o of await store.list('jobs/')) {
    if (!STATUS_FILE.test(o.key)) continue;
    const s = await parsed(store, o.key, JobStatusSchema);
    if (!s) unreadableStatus = true;
    else if (!TERMINAL_STATES.includes(s.state)) keep.add(`${s.dataset}/${s.datasetHash}`);
  }
  for (const id of named) {
    const [model, version] = id.split('/');
    const meta = await parsed(store, `models/${model}/${version}/metadata.json`, ModelMetadataSchema);
    if (meta) keep.add(`${meta.dataset.name}/${meta.dataset.hash}`);
  }
  const copies = new Map<string, { dataset: string; files: ObjectInfo[]; newest: number }>();
  for (const o of await store.list('prepared/')) {
    const p = PREPARED_FILE.exec(o.key);
    if (!p) continue;
    const id = `${p[1]}/${p[2]}`;
    const entry = copies.get(id) ?? { dataset: p[1], files: [], newest: 0 };
    entry.files.push(o);
    entry.newest = Math.max(entry.newest, o.lastModified?.getTime() ?? 0);
    copies.set(id, entry);
  }
  const newestOf = new Map<string, string>();
  for (const [id, c] of copies) {
    const best = newestOf.get(c.dataset);
    if (!best || copies.get(best)!.newest < c.newest) newestOf.set(c.dataset, id);
  }
  if (!unreadableStatus && !unreadableAlias) {
    for (const [id, c] of copies) {
      if (keep.has(id) || newestOf.get(c.dataset) === id) continue;
      for (const f of c.files) await store.delete(f.key);
      report.preparedCopies.push(id);
      report.objectsDeleted += c.files.length;
    }
  }
  return report;
}
