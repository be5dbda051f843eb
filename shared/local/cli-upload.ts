import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { NameSchema } from '../schemas/common.js';
import { UploadResponseSchema, type UploadResponse } from '../schemas/predict.js';
import { TrainSpecSchema } from '../schemas/spec.js';
import { ApiError, CliError, EndpointUnreachableError, UsageError, callApi, normaliseEndpoint, toApiError, type Connection } from './cli-client.js';
import { ProgressLine, formatBytes, renderBar, type Output } from './cli-progress.js';
import { forEachLimited } from '../concurrency.js';

/** The spec's name in a dataset: its upload is what starts training. */
export const TRAIN_SPEC_FILE = 'train.json';

/** `UploadRequestSchema` allows at most this many files per call. */
export const MAX_FILES_PER_UPLOAD_REQUEST = 1000;

export interface UploadOptions extends Connection {
  /** Folder to upload: `<label>/<file>` images, or `manifest.jsonl` and its files. */
  dir: string;
  /** Model that training publishes to; written into `train.json`. */
  model: string;
  /** @default the model's name */
  dataset?: string;
  stdout: Output;
  stderr: Output;
  /** Files in flight at once. @default 4 */
  concurrency?: number;
  /** Files per `POST /datasets/{dataset}/uploads` call. @default 1000 */
  batchSize?: number;
  /** Extra attempts for a PUT that failed on the network, with a 5xx or a 429. @default 2 */
  retries?: number;
  /** Wait before a retry, times the attempt number. @default 500 */
  retryDelayMs?: number;
}

export interface UploadResult {
  dataset: string;
  model: string;
  /** Files uploaded before `train.json`. */
  files: number;
  bytes: number;
  /** Whether `train.json` was made up (`generated`) or taken from the folder (`rewritten`). */
  spec: 'generated' | 'rewritten';
  /** When the `train.json` upload started (client clock): jobs created before belong to earlier uploads. */
  triggeredAt: Date;
}

interface LocalFile {
  /** Relative, `/`-separated: the key under `datasets/<dataset>/`. */
  path: string;
  absolute: string;
  size: number;
}

const CONTENT_TYPES: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson',
  '.csv': 'text/csv',
  '.txt': 'text/plain',
};

export function contentTypeFor(path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * Every regular file under `dir`, sorted, skipping dotfiles and dot-folders (`.DS_Store`,
 * `.git`) that no dataset means to include. Symlinks to files are followed; to folders not,
 * so a link cannot make the walk loop.
 */
export async function listDatasetFiles(dir: string): Promise<LocalFile[]> {
  const files: LocalFile[] = [];
  async function walk(absolute: string, relative: string): Promise<void> {
    const entries = await readdir(absolute, { withFileTypes: true });
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const childAbsolute = join(absolute, entry.name);
      const childRelative = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        await walk(childAbsolute, childRelative);
      } else if (entry.isFile() || entry.isSymbolicLink()) {
        const info = await stat(childAbsolute).catch(() => undefined);
        if (info?.isFile()) files.push({ path: childRelative, absolute: childAbsolute, size: info.size });
      }
    }
  }
  await walk(dir, '');
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * The `train.json` to upload: the folder's own with `model` set to the one asked for, or
 * `{"model": "<model>"}`. Checked against the spec schema here so that a typo fails in
 * a second, not after every image went up.
 */
export async function buildTrainSpec(dir: string, model: string): Promise<{ body: string; spec: 'generated' | 'rewritten' }> {
  let raw: string | undefined;
  try {
    raw = await readFile(join(dir, TRAIN_SPEC_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (raw === undefined) return { body: `${JSON.stringify({ model }, null, 2)}\n`, spec: 'generated' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    throw new CliError(`${join(dir, TRAIN_SPEC_FILE)} is not valid JSON: ${(error as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CliError(`${join(dir, TRAIN_SPEC_FILE)} must hold a JSON object`);
  }
  const spec = { ...(parsed as Record<string, unknown>), model };
  const checked = TrainSpecSchema.safeParse(spec);
  if (!checked.success) {
    const issues = checked.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`).join('\n');
    throw new CliError(`${join(dir, TRAIN_SPEC_FILE)} is not a valid training spec:\n${issues}`);
  }
  // Upload what the user wrote (plus the model), not the schema's defaults: the
  // platform applies those itself and may change them.
  return { body: `${JSON.stringify(spec, null, 2)}\n`, spec: 'rewritten' };
}

function checkName(flag: string, value: string): string {
  const result = NameSchema.safeParse(value);
  if (!result.success) throw new UsageError(`${flag} "${value}": ${result.error.issues[0]?.message ?? 'invalid name'}`);
  return value;
}

async function requestUploadUrls(
  conn: Connection,
  dataset: string,
  files: { path: string; contentType: string }[],
): Promise<Map<string, UploadResponse['uploads'][number]>> {
  const body = await callApi(conn, `/datasets/${encodeURIComponent(dataset)}/uploads`, { method: 'POST', body: { files } });
  const parsed = UploadResponseSchema.safeParse(body);
  if (!parsed.success) throw new CliError(`unexpected answer to the upload request: ${parsed.error.issues[0]?.message ?? ''}`);
  const byPath = new Map(parsed.data.uploads.map((u) => [u.path, u]));
  for (const file of files) {
    if (!byPath.has(file.path)) throw new CliError(`the platform gave no upload URL for ${file.path}`);
  }
  return byPath;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function isRetryable(error: unknown): boolean {
  if (error instanceof ApiError) return error.status >= 500 || error.status === 429;
  return error instanceof EndpointUnreachableError || !(error instanceof CliError);
}

/**
 * PUTs bytes to a URL the platform handed out. The API key goes only to the platform's
 * own origin: a presigned S3 URL carries its own authorisation, and the key must not leak.
 */
async function putBytes(
  conn: Connection,
  target: UploadResponse['uploads'][number],
  bytes: Uint8Array,
  options: { retries: number; retryDelayMs: number },
): Promise<void> {
  const doFetch = conn.fetch ?? globalThis.fetch;
  const endpoint = normaliseEndpoint(conn.endpoint);
  const url = new URL(target.url, `${endpoint}/`);
  const headers: Record<string, string> = { ...target.headers };
  const sameOrigin = url.origin === new URL(endpoint).origin;
  if (sameOrigin && conn.apiKey) headers['x-api-key'] = conn.apiKey;
  for (let attempt = 0; ; attempt++) {
    try {
      let response: Response;
      try {
        // A copy typed over a plain ArrayBuffer, which is what fetch's BodyInit accepts.
        response = await doFetch(url, { method: 'PUT', headers, body: new Uint8Array(bytes) });
      } catch (error) {
        if (sameOrigin) throw new EndpointUnreachableError(endpoint, error);
        throw new CliError(`cannot reach ${url.origin} to upload ${target.path}: ${(error as Error).message}`);
      }
      if (!response.ok) throw toApiError(response.status, await response.text());
      await response.body?.cancel();
      return;
    } catch (error) {
      if (attempt >= options.retries || !isRetryable(error)) {
        if (error instanceof ApiError) throw new ApiError(error.status, error.code, `upload of ${target.path} failed: ${error.detail}`);
        throw error;
      }
      await sleep(options.retryDelayMs * (attempt + 1));
    }
  }
}

/**
 * Uploads a dataset folder, then its `train.json` last: the spec's arrival is what starts
 * training, so it must not land before every image it describes. If any file fails,
 * `train.json` is not sent and nothing starts.
 */
export async function uploadDataset(options: UploadOptions): Promise<UploadResult> {
  const model = checkName('--model', options.model);
  const dataset = checkName('--dataset', options.dataset ?? model);
  const dirInfo = await stat(options.dir).catch(() => undefined);
  if (!dirInfo?.isDirectory()) throw new CliError(`${options.dir} is not a directory`);

  const spec = await buildTrainSpec(options.dir, model);
  const files = (await listDatasetFiles(options.dir)).filter((f) => f.path !== TRAIN_SPEC_FILE);
  if (files.length === 0) {
    options.stderr.write(`warning: ${options.dir} holds no files besides train.json: training will use what dataset ${dataset} already holds\n`);
  }

  const batchSize = Math.min(options.batchSize ?? MAX_FILES_PER_UPLOAD_REQUEST, MAX_FILES_PER_UPLOAD_REQUEST);
  const putOptions = { retries: options.retries ?? 2, retryDelayMs: options.retryDelayMs ?? 500 };
  const totalBytes = files.reduce((sum, f) => sum + f.size, 0);
  const progress = new ProgressLine(options.stderr);
  let doneFiles = 0;
  let doneBytes = 0;
  const draw = () => {
    const fraction = files.length === 0 ? 1 : doneFiles / files.length;
    progress.update(
      `uploading ${renderBar(fraction)} ${doneFiles}/${files.length} files ${formatBytes(doneBytes)}/${formatBytes(totalBytes)}`,
      // In a log, one line per tenth is plenty.
      String(Math.floor(fraction * 10)),
    );
  };
  draw();

  try {
    // URLs are asked for batch by batch, just before use, so presigned ones cannot expire
    // while earlier batches are still going up.
    for (let start = 0; start < files.length; start += batchSize) {
      const batch = files.slice(start, start + batchSize);
      const targets = await requestUploadUrls(
        options,
        dataset,
        batch.map((f) => ({ path: f.path, contentType: contentTypeFor(f.path) })),
      );
      await forEachLimited(batch, options.concurrency ?? 4, async (file) => {
        const bytes = await readFile(file.absolute);
        await putBytes(options, targets.get(file.path)!, bytes, putOptions);
        doneFiles += 1;
        doneBytes += file.size;
        draw();
      });
    }
  } finally {
    progress.done();
  }

  const triggeredAt = new Date();
  const specTarget = await requestUploadUrls(options, dataset, [{ path: TRAIN_SPEC_FILE, contentType: 'application/json' }]);
  await putBytes(options, specTarget.get(TRAIN_SPEC_FILE)!, Buffer.from(spec.body), putOptions);

  return { dataset, model, files: files.length, bytes: totalBytes, spec: spec.spec, triggeredAt };
}
