/**
 * The dashboard's one way to the platform's API: every call carries the key from
 * sessionStorage in the `x-api-key` header (never in a URL, a cookie or a log),
 * and every error answer becomes an ApiCallError with the platform's code.
 */
import type { JobStatus } from '../../shared/schemas/job.js';
import type { ModelMetadata } from '../../shared/schemas/model.js';
import type { DatasetReport, RecordsSummary } from '../../shared/schemas/index.js';
import type { PredictResponse } from '../../shared/schemas/predict.js';
import type { VersionReport } from '../../shared/schemas/version-report.js';

const KEY_ITEM = 'tl.apiKey';

export const session = {
  key: (): string | null => sessionStorage.getItem(KEY_ITEM),
  signIn: (key: string) => sessionStorage.setItem(KEY_ITEM, key),
  signOut: () => sessionStorage.removeItem(KEY_ITEM),
};

export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiCallError';
  }
}

/** Where the API is: the page's own origin on the embedded platform, or the one the deployment wrote into config.json. */
let apiBase = '';
export function setApiBase(base: string): void {
  apiBase = base.replace(/\/+$/, '');
}

/** Sends a request with the key header; an error answer becomes an ApiCallError with the platform's code. */
async function send(path: string, init: { method?: string; body?: unknown; key?: string; accept?: string } = {}): Promise<Response> {
  const key = init.key ?? session.key();
  const headers: Record<string, string> = { accept: init.accept ?? 'application/json' };
  if (key) headers['x-api-key'] = key;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${apiBase}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    credentials: 'omit',
    cache: 'no-store',
  });
  if (!res.ok) {
    const text = await res.text();
    let err: { code?: string; message?: string } | undefined;
    try {
      err = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
    } catch {
      err = undefined;
    }
    throw new ApiCallError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? (text.slice(0, 200) || `HTTP ${res.status}`));
  }
  return res;
}

export async function call<T>(path: string, init: { method?: string; body?: unknown; key?: string } = {}): Promise<T> {
  const text = await (await send(path, init)).text();
  try {
    return (text ? JSON.parse(text) : undefined) as T;
  } catch {
    return undefined as T;
  }
}

/** A file the API answers with (the ONNX export, the model card), fetched with the key header: a plain link could not carry it. */
export async function download(path: string, accept: string): Promise<Blob> {
  return (await send(path, { accept })).blob();
}

const enc = encodeURIComponent;

export interface ModelSummary {
  model: string;
  version?: string;
  createdAt?: string;
  kind?: string;
  base?: string;
  tasks?: Array<{ name: string; type: string; auxiliary: boolean; labels?: string[] }>;
  headline?: Record<string, { metric: string; value: number }>;
  job?: Pick<JobStatus, 'state' | 'phase' | 'progress' | 'updatedAt'> & { error?: { code: string; message: string } };
  error?: { code: string; message: string };
}

export interface VersionRow {
  version: string;
  aliases: string[];
  createdAt?: string;
  kind?: string;
  tasks?: string[];
  headline?: Record<string, { metric: string; value: number }>;
  error?: { code: string; message: string };
}

export interface VersionList {
  model: string;
  aliases: Record<string, string>;
  total: number;
  versions: VersionRow[];
}

export type DatasetView = Pick<DatasetReport, 'dataset' | 'hash' | 'layout' | 'records' | 'splits' | 'tasks' | 'skipped' | 'createdAt'>;

export interface UploadUrls {
  dataset: string;
  uploads: Array<{ path: string; key: string; url: string; method?: string; headers: Record<string, string> }>;
}

export const api = {
  models: () => call<{ models: ModelSummary[] }>('/models'),
  model: (m: string) => call<ModelMetadata & { records?: RecordsSummary }>(`/models/${enc(m)}`),
  job: (m: string) => call<JobStatus>(`/models/${enc(m)}/job`),
  versions: (m: string) => call<VersionList>(`/models/${enc(m)}/versions`),
  report: (m: string, v: string) => call<VersionReport>(`/models/${enc(m)}/versions/${enc(v)}/report`),
  dataset: (m: string, v: string) => call<DatasetView>(`/models/${enc(m)}/versions/${enc(v)}/dataset`),
  promote: (m: string, version: string) => call<{ version: string; previous?: string }>(`/models/${enc(m)}/promote`, { body: { version } }),
  rollback: (m: string) => call<{ version: string; previous: string }>(`/models/${enc(m)}/rollback`, { method: 'POST' }),
  predict: (m: string, instance: { image: string } | { features: number[] }) =>
    call<PredictResponse>(`/models/${enc(m)}/predict`, { body: { instances: [instance], topK: 5 } }),
  exportOnnx: (m: string, v: string) => download(`/models/${enc(m)}/export?format=onnx&version=${enc(v)}`, 'application/octet-stream'),
  card: (m: string, v: string) => download(`/models/${enc(m)}/card?version=${enc(v)}`, 'text/markdown'),
  uploadUrls: (dataset: string, files: Array<{ path: string }>) => call<UploadUrls>(`/datasets/${enc(dataset)}/uploads`, { body: { files } }),
};
