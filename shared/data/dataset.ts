import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { NotFoundError, type ObjectInfo, type ObjectStore } from '../ports/object-store.js';
import { LabelsSchema, ManifestLineSchema, type LabelValue } from '../schemas/manifest.js';
import type { DatasetReport, SkippedFileSchema } from '../schemas/report.js';
import type { Task } from '../schemas/spec.js';

/**
 * Reading a raw dataset under `datasets/<dataset>/`: which layout it uses, which
 * records it holds with which labels, and a hash of its content.
 */

export type DatasetLayout = 'folders' | 'manifest';

export const SPEC_FILE = 'train.json';
export const MANIFEST_FILE = 'manifest.jsonl';

/**
 * Bumped whenever preprocessing would turn the same upload into different shards
 * (decoder, resize or split changes). It is part of the content hash, so prepared
 * data from an older preprocessor is never reused for a new upload.
 */
export const PREPROCESS_VERSION = 'tl-preprocess-1';

/** Codes of the dataset problems a user can fix; they end a job as `failed`. */
export type DatasetErrorCode = 'INVALID_MANIFEST' | 'INVALID_DATASET' | 'EMPTY_DATASET' | 'TOO_FEW_EXAMPLES' | 'TOO_FEW_CLASSES';

/** A problem with the uploaded data, described for the person who uploaded it. */
export class DatasetError extends Error {
  override name = 'DatasetError';
  constructor(
    readonly code: DatasetErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface DatasetItem {
  /** Key relative to the dataset folder; what the split hashes. */
  key: string;
  /** Full object key in the store. */
  objectKey: string;
  /** Labels per task; a task left out or `null` has no label for this record. */
  labels: Record<string, LabelValue | null>;
  /** Line of manifest.jsonl that listed it (manifest layout). */
  line?: number;
}

export type SkippedFile = z.infer<typeof SkippedFileSchema>;

export interface DatasetContents {
  layout: DatasetLayout;
  items: DatasetItem[];
  /** Files that are not records, with the reason, keyed relative to the dataset. */
  skipped: SkippedFile[];
}

export const datasetPrefix = (dataset: string) => `datasets/${dataset}/`;

/** Every object of a dataset, train.json included, sorted by key. */
export async function listDatasetObjects(store: ObjectStore, dataset: string): Promise<ObjectInfo[]> {
  return store.list(datasetPrefix(dataset));
}

/** `manifest` when `manifest.jsonl` sits at the dataset's top level, else `folders`. */
export function detectLayout(objects: readonly ObjectInfo[], dataset: string): DatasetLayout {
  const manifestKey = datasetPrefix(dataset) + MANIFEST_FILE;
  return objects.some((o) => o.key === manifestKey) ? 'manifest' : 'folders';
}

/**
 * SHA-256 over the sorted (relative key, etag, size) of every dataset object, the
 * spec's bytes and the preprocessor version. Listing metadata is enough to notice
 * any change (an etag changes with the content) without reading every image; the
 * spec's bytes are hashed as well so that a spec change alone makes a new job even
 * in a store whose etags are not content hashes.
 */
export function datasetContentHash(objects: readonly ObjectInfo[], dataset: string, specBytes: Uint8Array): string {
  const prefix = datasetPrefix(dataset);
  const entries = objects
    .map((o) => [o.key.startsWith(prefix) ? o.key.slice(prefix.length) : o.key, o.etag ?? '', o.size] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  // JSON keeps the fields unambiguous whatever characters keys or etags hold.
  return createHash('sha256')
    .update(JSON.stringify({ version: PREPROCESS_VERSION, entries }))
    .update('\n')
    .update(specBytes)
    .digest('hex');
}

/** Why a file is not a record, for names no user means as data. */
function ignoredReason(relKey: string): string | undefined {
  const parts = relKey.split('/');
  if (parts.some((p) => p === '__MACOSX')) return 'macOS archive metadata (__MACOSX), not data';
  if (parts.some((p) => p.startsWith('.'))) return 'hidden file';
  return undefined;
}

/**
 * The records of a dataset and the files that are not records.
 *
 * Folders layout: `<label>/<file>` gives the record the label `<label>` for the
 * spec's single classification task; deeper files (`<label>/a/b.jpg`) take their
 * first folder as label, so a class can be organised in subfolders. Files at the
 * top level other than train.json are skipped with a reason.
 *
 * Manifest layout: each line of `manifest.jsonl` names one record (see
 * `parseManifest`); files no line names are skipped with a reason, and a line
 * naming a file that was not uploaded is skipped with its line number.
 *
 * @throws DatasetError (INVALID_DATASET, INVALID_MANIFEST) for data no retry can fix.
 */
export async function readDatasetContents(
  store: ObjectStore,
  dataset: string,
  objects: readonly ObjectInfo[],
  tasks: readonly Task[],
): Promise<DatasetContents> {
  const prefix = datasetPrefix(dataset);
  const layout = detectLayout(objects, dataset);
  const files = objects.map((o) => o.key.slice(prefix.length)).filter((k) => k !== SPEC_FILE && k !== MANIFEST_FILE);
  const items: DatasetItem[] = [];
  const skipped: SkippedFile[] = [];

  if (layout === 'folders') {
    if (tasks.length !== 1 || tasks[0].type !== 'classification') {
      throw new DatasetError(
        'INVALID_DATASET',
        `a folder-per-label dataset has exactly one classification task, but train.json declares ${describeTasks(tasks)}; upload a ${MANIFEST_FILE} to label several tasks or other task types`,
      );
    }
    const task = tasks[0].name;
    for (const rel of files) {
      const ignored = ignoredReason(rel);
      if (ignored) skipped.push({ key: rel, reason: ignored });
      else if (!rel.includes('/')) skipped.push({ key: rel, reason: `at the top level of the dataset, not in a <label>/ folder` });
      else {
        const label = rel.slice(0, rel.indexOf('/'));
        if (label.length > 200) skipped.push({ key: rel, reason: 'label folder name longer than 200 characters' });
        else items.push({ key: rel, objectKey: prefix + rel, labels: { [task]: label } });
      }
    }
    return { layout, items, skipped };
  }

  const lines = parseManifest(await readManifestText(store, prefix), tasks);
  const present = new Set(files);
  const listed = new Set<string>();
  for (const l of lines) {
    listed.add(l.source);
    if (!present.has(l.source)) skipped.push({ key: l.source, reason: `listed on line ${l.line} of ${MANIFEST_FILE} but not uploaded` });
    else if (Object.values(l.labels).every((v) => v === null)) skipped.push({ key: l.source, reason: `line ${l.line} of ${MANIFEST_FILE} gives no labels` });
    else items.push({ key: l.source, objectKey: prefix + l.source, labels: l.labels, line: l.line });
  }
  for (const rel of files) {
    if (listed.has(rel)) continue;
    skipped.push({ key: rel, reason: ignoredReason(rel) ?? `not listed in ${MANIFEST_FILE}` });
  }
  return { layout, items, skipped };
}

function describeTasks(tasks: readonly Task[]): string {
  return tasks.length === 1 ? `the ${tasks[0].type} task "${tasks[0].name}"` : `${tasks.length} tasks (${tasks.map((t) => `"${t.name}"`).join(', ')})`;
}

export interface ManifestEntry {
  /** 1-based line number in manifest.jsonl. */
  line: number;
  source: string;
  /** Labels checked against the spec's tasks; integer class names become strings. */
  labels: Record<string, LabelValue | null>;
}

/**
 * Parses `manifest.jsonl` and checks every label against the spec's tasks: known
 * task names only; classification gets one class name (an integer is taken as
 * its decimal name, since digit classes are common); multilabel a list of distinct
 * class names; regression a number or a list of numbers whose length is the task's
 * `size`, or else the same on every line. Blank lines are ignored.
 *
 * @throws DatasetError INVALID_MANIFEST naming the line and the field.
 */
export function parseManifest(text: string, tasks: readonly Task[]): ManifestEntry[] {
  const checkLabels = labelChecker(tasks);
  const firstLineOf = new Map<string, number>();
  const entries: ManifestEntry[] = [];
  forEachManifestLine(text, (line, json) => {
    const parsed = ManifestLineSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      failLine(line, issue.path.join('.') || undefined, describeIssue(issue));
    }
    const { source, labels } = parsed.data;
    const earlier = firstLineOf.get(source);
    if (earlier !== undefined) failLine(line, 'source', `"${source}" is already listed on line ${earlier}`);
    firstLineOf.set(source, line);
    entries.push({ line, source, labels: checkLabels(line, labels) });
  });
  return entries;
}

function failLine(line: number, field: string | undefined, message: string): never {
  throw new DatasetError('INVALID_MANIFEST', `${MANIFEST_FILE} line ${line}${field ? `, field "${field}"` : ''}: ${message}`);
}

/** Calls `fn` with the 1-based line number and parsed JSON of every non-blank line. */
function forEachManifestLine(text: string, fn: (line: number, json: unknown) => void): void {
  const rows = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  rows.forEach((row, i) => {
    const line = i + 1;
    if (row.trim() === '') return;
    let json: unknown;
    try {
      json = JSON.parse(row);
    } catch (err) {
      failLine(line, undefined, `not valid JSON (${(err as Error).message})`);
    }
    fn(line, json);
  });
}

/**
 * Checks a line's labels against the spec's tasks (see parseManifest); remembers the
 * first regression size seen per task, so every later line must match it.
 */
function labelChecker(tasks: readonly Task[]): (line: number, labels: Record<string, LabelValue | null>) => Record<string, LabelValue | null> {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const regressionSize = new Map<string, { size: number; line?: number }>();
  for (const t of tasks) if (t.type === 'regression' && t.size !== undefined) regressionSize.set(t.name, { size: t.size });
  return (line, labels) => {
    const fail: (field: string, message: string) => never = (field, message) => failLine(line, field, message);
    const checked: Record<string, LabelValue | null> = {};
    for (const [name, value] of Object.entries(labels)) {
      const field = `labels.${name}`;
      const task = byName.get(name);
      if (!task) fail(field, `unknown task "${name}"; train.json declares ${[...byName.keys()].map((n) => `"${n}"`).join(', ')}`);
      if (value === null) {
        checked[name] = null;
        continue;
      }
      if (task.type === 'classification') {
        if (typeof value === 'string') checked[name] = value;
        else if (typeof value === 'number' && Number.isInteger(value)) checked[name] = String(value);
        else fail(field, `"${name}" is a classification task: expected one class name, got ${describeValue(value)}`);
      } else if (task.type === 'multilabel') {
        if (!(Array.isArray(value) && value.every((v) => typeof v === 'string')))
          fail(field, `"${name}" is a multilabel task: expected a list of class names, got ${describeValue(value)}`);
        // A repeated class is almost always a typo or a merge gone wrong; a set has each class once.
        const repeated = value.find((v, i) => value.indexOf(v) !== i);
        if (repeated !== undefined) fail(field, `"${name}" lists the class "${repeated}" more than once`);
        checked[name] = value;
      } else {
        const size = typeof value === 'number' ? 1 : Array.isArray(value) && value.every((v) => typeof v === 'number') ? value.length : -1;
        if (size < 0) fail(field, `"${name}" is a regression task: expected a number or a list of numbers, got ${describeValue(value)}`);
        const expected = regressionSize.get(name);
        if (expected && expected.size !== size) {
          const from = expected.line === undefined ? `its size in train.json` : `line ${expected.line}`;
          fail(field, `"${name}" needs ${expected.size} value${expected.size === 1 ? '' : 's'} (${from}), got ${size}`);
        }
        if (!expected) regressionSize.set(name, { size, line });
        checked[name] = value;
      }
    }
    return checked;
  };
}

export interface VectorManifestEntry {
  /** 1-based line number in manifest.jsonl. */
  line: number;
  /** The record's features; null where a value is missing (imputed when training and predicting). */
  features: Array<number | null>;
  labels: Record<string, LabelValue | null>;
}

/**
 * Parses the `manifest.jsonl` of a vector (tabular) dataset: one
 * `{"features": [numbers or null], "labels": {...}}` per line, no `source`. Every
 * line has the same number of features: `size` when train.json declares it, else
 * the first line's. Labels are checked as in parseManifest.
 *
 * @throws DatasetError INVALID_MANIFEST naming the line and the field.
 */
export function parseVectorManifest(text: string, tasks: readonly Task[], size?: number): VectorManifestEntry[] {
  const checkLabels = labelChecker(tasks);
  const entries: VectorManifestEntry[] = [];
  let width: { size: number; line?: number } | undefined = size === undefined ? undefined : { size };
  forEachManifestLine(text, (line, json) => {
    if (typeof json !== 'object' || json === null || Array.isArray(json))
      failLine(line, undefined, 'expected an object like {"features": [1.5, null, 3], "labels": {...}}');
    const obj = json as Record<string, unknown>;
    if ('source' in obj) failLine(line, 'source', 'a vector dataset (input.type "vector") gives each record as "features", not as a "source" file');
    const unknown = Object.keys(obj).filter((k) => k !== 'features' && k !== 'labels');
    if (unknown.length)
      failLine(line, undefined, `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}; a line has "features" and "labels"`);
    const features = obj.features;
    if (!Array.isArray(features) || features.length === 0)
      failLine(line, 'features', `expected a non-empty list of numbers (null for a missing value), got ${describeJson(features)}`);
    features.forEach((v, j) => {
      if (Array.isArray(v))
        failLine(line, `features.${j}`, 'a list inside the features: each line holds one flat list of numbers (ragged or nested rows are not a table)');
      if (v !== null && typeof v !== 'number') failLine(line, `features.${j}`, `expected a number or null, got ${describeJson(v)}`);
      // JSON can spell 1e999, which parses as Infinity; float32 overflows sooner.
      if (typeof v === 'number' && !Number.isFinite(Math.fround(v))) failLine(line, `features.${j}`, `${v} does not fit in float32`);
    });
    if (width && width.size !== features.length) {
      const from = width.line === undefined ? 'train.json declares input.size' : `line ${width.line} has`;
      failLine(
        line,
        'features',
        `${features.length} value${features.length === 1 ? '' : 's'}, but ${from} ${width.size}; every line needs the same number of features`,
      );
    }
    width ??= { size: features.length, line };
    const labels = LabelsSchema.safeParse(obj.labels ?? {});
    if (!labels.success) {
      const issue = labels.error.issues[0];
      failLine(line, ['labels', ...issue.path].join('.'), describeIssue({ ...issue, path: ['labels', ...issue.path] }));
    }
    entries.push({ line, features: features as Array<number | null>, labels: checkLabels(line, labels.data) });
  });
  return entries;
}

function describeJson(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value === null) return 'null';
  if (typeof value === 'boolean' || typeof value === 'number') return `the ${typeof value} ${value}`;
  return 'an object';
}

function describeValue(value: LabelValue): string {
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  return `a list of ${value.length} ${value.length > 0 && typeof value[0] === 'number' ? 'numbers' : 'strings'}`;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_union' && issue.path[0] === 'labels') {
    return 'expected a class name, a list of class names, a number, a list of numbers or null';
  }
  if (issue.code === 'unrecognized_keys')
    return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}; a line has "source" and "labels"`;
  if (issue.code === 'invalid_type' && issue.path.length === 0) return 'expected an object like {"source": "images/1.jpg", "labels": {...}}';
  return issue.message;
}

export type TaskSummary = DatasetReport['tasks'][string];

/** Per task: how many records carry a label, counts per class, regression size. */
export function summarizeTasks(tasks: readonly Task[], items: readonly Pick<DatasetItem, 'labels'>[]): Record<string, TaskSummary> {
  const out: Record<string, TaskSummary> = {};
  for (const task of tasks) {
    let labelled = 0;
    const classes: Record<string, number> = {};
    let size: number | undefined = task.size;
    for (const item of items) {
      const v = item.labels[task.name];
      if (v === null || v === undefined) continue;
      labelled++;
      if (task.type === 'regression') size ??= typeof v === 'number' ? 1 : v.length;
      else for (const c of typeof v === 'string' ? [v] : (v as string[])) classes[c] = (classes[c] ?? 0) + 1;
    }
    out[task.name] =
      task.type === 'regression'
        ? { type: task.type, labelled, ...(size !== undefined ? { size } : {}) }
        : { type: task.type, labelled, classes: Object.fromEntries(Object.entries(classes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) };
  }
  return out;
}

/** Fewest usable examples a class (or a regression task) needs. */
export const MIN_EXAMPLES_PER_CLASS = 2;

/**
 * Refuses data a model cannot be trained on, rather than publish a model that
 * silently misses a class: every class needs two usable examples (one to learn
 * from, one to check it on), every classification task two classes, and every
 * task some labels.
 * @throws DatasetError TOO_FEW_EXAMPLES or TOO_FEW_CLASSES, naming task, labels and counts.
 */
export function assertTrainable(tasks: readonly Task[], summary: Record<string, TaskSummary>): void {
  const taskPart = (t: Task) => (tasks.length > 1 || t.name !== 'class' ? ` of task "${t.name}"` : '');
  for (const task of tasks) {
    const s = summary[task.name];
    if (task.type === 'regression') {
      if (s.labelled < MIN_EXAMPLES_PER_CLASS) {
        throw new DatasetError(
          'TOO_FEW_EXAMPLES',
          `regression task "${task.name}" has ${s.labelled} usable labelled example${s.labelled === 1 ? '' : 's'}; it needs at least ${MIN_EXAMPLES_PER_CLASS}`,
        );
      }
      continue;
    }
    const classes = Object.entries(s.classes ?? {});
    const few = classes.filter(([, n]) => n < MIN_EXAMPLES_PER_CLASS);
    if (few.length > 0) {
      const list = few.map(([c, n]) => `"${c}" has ${n}`).join(', ');
      throw new DatasetError(
        'TOO_FEW_EXAMPLES',
        `label${few.length > 1 ? 's' : ''}${taskPart(task)} with fewer than ${MIN_EXAMPLES_PER_CLASS} usable images: ${list}. Add images or remove ${few.length > 1 ? 'those labels' : 'that label'}`,
      );
    }
    const minClasses = task.type === 'classification' ? 2 : 1;
    if (classes.length < minClasses) {
      throw new DatasetError(
        'TOO_FEW_CLASSES',
        classes.length === 0
          ? `task "${task.name}" has no usable labelled examples`
          : `classification task "${task.name}" has only one class (${JSON.stringify(classes[0][0])}); it needs at least 2 to learn anything`,
      );
    }
  }
}

/**
 * The text of a dataset's manifest.jsonl. @throws DatasetError INVALID_MANIFEST when it
 * was deleted between the listing and now (the next upload of train.json sees the real state).
 */
export async function readManifestText(store: ObjectStore, prefix: string): Promise<string> {
  try {
    return (await store.get(prefix + MANIFEST_FILE)).toString('utf8');
  } catch (err) {
    if (err instanceof NotFoundError)
      throw new DatasetError('INVALID_MANIFEST', `${MANIFEST_FILE} disappeared while the dataset was being read; upload it again, then train.json`);
    throw err;
  }
}
