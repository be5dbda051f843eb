import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { NameSchema } from '../schemas/common.js';
import { MAX_INSTANCES, PredictResponseSchema, type PredictResponse } from '../schemas/predict.js';
import { CliError, UsageError, callApi, type Connection } from './cli-client.js';

/**
 * Base64 bytes per call. API Gateway hands Lambda at most 6 MB of payload; staying under
 * it keeps the same batching valid in the cloud and on the embedded default.
 */
export const MAX_BATCH_BASE64_BYTES = 5 * 1024 * 1024;

export interface PredictOptions extends Connection {
  model: string;
  /** Image files, read from disk. */
  images: string[];
  /** Version or alias to call. @default "latest" (the platform's default) */
  version?: string;
  /** Scores listed per classification task. @default the platform's default (3) */
  topK?: number;
  /** Tasks to return, auxiliary ones included when named. @default every main task */
  tasks?: string[];
  /** Relative image paths are read from here. @default process.cwd() */
  cwd?: string;
  /** Instances per call. @default 32 (`MAX_INSTANCES`) */
  maxInstances?: number;
  /** Base64 bytes per call. @default 5 MiB */
  maxBatchBytes?: number;
}

function checkName(flag: string, value: string): void {
  const result = NameSchema.safeParse(value);
  if (!result.success) throw new UsageError(`${flag} "${value}": ${result.error.issues[0]?.message ?? 'invalid name'}`);
}

/** Groups encoded images into calls that respect both the instance and the byte limit. */
export function batchInstances(encoded: string[], maxInstances: number, maxBytes: number): string[][] {
  const batches: string[][] = [];
  let current: string[] = [];
  let bytes = 0;
  for (const image of encoded) {
    // One oversized image still goes alone: the platform's 413 says more than we could.
    if (current.length > 0 && (current.length >= maxInstances || bytes + image.length > maxBytes)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(image);
    bytes += image.length;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * Predicts every image, in as many calls as the limits need, and merges the answers in
 * input order. Later calls are pinned to the version the first one got, so one output
 * never mixes two models when the `latest` alias moves midway.
 */
export async function predictImages(options: PredictOptions): Promise<PredictResponse> {
  checkName('model', options.model);
  if (options.images.length === 0) throw new UsageError('give at least one image file');
  if (options.topK !== undefined && !(Number.isInteger(options.topK) && options.topK >= 1 && options.topK <= 100)) {
    throw new UsageError(`--top-k must be an integer from 1 to 100, got ${options.topK}`);
  }
  const encoded = await Promise.all(
    options.images.map(async (path) => {
      try {
        return (await readFile(resolve(options.cwd ?? process.cwd(), path))).toString('base64');
      } catch (error) {
        throw new CliError(`cannot read image ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
    }),
  );
  const batches = batchInstances(encoded, Math.min(options.maxInstances ?? MAX_INSTANCES, MAX_INSTANCES), options.maxBatchBytes ?? MAX_BATCH_BASE64_BYTES);

  let version = options.version;
  let merged: PredictResponse | undefined;
  for (const batch of batches) {
    const body = await callApi(options, `/models/${encodeURIComponent(options.model)}/predict`, {
      method: 'POST',
      body: {
        instances: batch.map((image) => ({ image })),
        ...(options.topK !== undefined ? { topK: options.topK } : {}),
        ...(options.tasks?.length ? { tasks: options.tasks } : {}),
        ...(version !== undefined ? { version } : {}),
      },
    });
    const parsed = PredictResponseSchema.safeParse(body);
    if (!parsed.success) throw new CliError(`unexpected predict response: ${parsed.error.issues[0]?.message ?? ''}`);
    if (parsed.data.predictions.length !== batch.length) {
      throw new CliError(`the platform returned ${parsed.data.predictions.length} predictions for ${batch.length} images`);
    }
    if (!merged) {
      merged = { ...parsed.data, predictions: [...parsed.data.predictions] };
      version = parsed.data.version;
    } else {
      merged.predictions.push(...parsed.data.predictions);
    }
  }
  return merged!;
}

export interface ModelsOptions extends Connection {
  /** One model's metadata instead of the list. */
  model?: string;
}

/** `GET /models`, or `GET /models/{model}` when a model is named. */
export async function fetchModels(options: ModelsOptions): Promise<unknown> {
  if (options.model === undefined) return callApi(options, '/models');
  checkName('model', options.model);
  return callApi(options, `/models/${encodeURIComponent(options.model)}`);
}
