import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { normaliseEndpoint } from './cli-client.js';

/** Where the local platform listens unless told otherwise (`PORT` defaults to 8080). */
export const DEFAULT_ENDPOINT = 'http://127.0.0.1:8080';

export interface ResolveConnectionOptions {
  /** `--endpoint`, if given. */
  endpoint?: string;
  /** `--api-key`, if given. */
  apiKey?: string;
  /** Environment to read `TL_ENDPOINT`, `TL_API_KEY` and `TL_DATA_DIR` from. */
  env: Record<string, string | undefined>;
  /** Directory that a relative `TL_DATA_DIR` is resolved against. */
  cwd: string;
}

/**
 * Flags win over the environment. With a loopback endpoint and no key, the default
 * tenant's key is read from the local platform's `tenants.json`, so `tl` works
 * right after `npm start` with no setup.
 */
export async function resolveConnection(options: ResolveConnectionOptions): Promise<{ endpoint: string; apiKey?: string }> {
  const endpoint = normaliseEndpoint(options.endpoint ?? nonEmpty(options.env.TL_ENDPOINT) ?? DEFAULT_ENDPOINT);
  let apiKey = options.apiKey ?? nonEmpty(options.env.TL_API_KEY);
  if (apiKey === undefined && isLoopback(endpoint)) {
    const dataDir = resolve(options.cwd, nonEmpty(options.env.TL_DATA_DIR) ?? '.data');
    apiKey = await readDefaultApiKey(dataDir);
  }
  return { endpoint, apiKey };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** Keys read from disk are only ever sent to this machine. */
export function isLoopback(endpoint: string): boolean {
  const host = new URL(endpoint).hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The default tenant's `apiKey` from `<dataDir>/tenants.json`: the first tenant marked
 * `default: true`, else the first one. Read leniently (the platform owns the file's
 * schema); any problem yields `undefined` and the platform's 403 explains the rest.
 */
export async function readDefaultApiKey(dataDir: string): Promise<string | undefined> {
  let raw: string;
  try {
    raw = await readFile(resolve(dataDir, 'tenants.json'), 'utf8');
  } catch {
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const tenants = Array.isArray(parsed) ? parsed : (parsed as { tenants?: unknown } | null)?.tenants;
  if (!Array.isArray(tenants)) return undefined;
  const withKeys = tenants.filter(
    (t): t is { apiKey: string; default?: unknown } => !!t && typeof t === 'object' && typeof (t as { apiKey?: unknown }).apiKey === 'string',
  );
  return (withKeys.find((t) => t.default === true) ?? withKeys[0])?.apiKey;
}
