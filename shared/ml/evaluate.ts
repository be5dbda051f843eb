/**
 * Runs a published version on labelled images, through its own embedder (base
 * and cut, via the embedding cache) and its stored model or prototypes. The
 * promotion gate uses it to measure the serving version on the candidate's test
 * split, and continual learning to measure old tasks before and after.
 */
import { versionPrefix } from '../models/registry.js';
import type { ObjectStore } from '../ports/object-store.js';
import type { LabelValue } from '../schemas/manifest.js';
import type { ModelMetadata } from '../schemas/model.js';
import { embedForBase } from './embedding-cache.js';
import type { ImageShape } from './embedder.js';
import { predictOutputs } from './fine-tune.js';
import { loadModel } from './model-io.js';
import { loadPrototypes, scorePrototypes } from './prototype.js';

export interface LabelledImages {
  /** count×shape uint8 images. */
  pixels: Uint8Array;
  count: number;
  shape: ImageShape;
  /** Raw label per record, per task name (null or missing = no label). */
  labels: Record<string, Array<LabelValue | null | undefined>>;
}

/** Outputs of a version (one array count×units per task, in metadata.tasks order) for its embeddings. */
export async function versionOutputs(store: ObjectStore, meta: ModelMetadata, x: Float32Array, count: number): Promise<Float32Array[]> {
  const prefix = versionPrefix(meta.model, meta.version);
  if (meta.kind === 'prototype') return scorePrototypes(await loadPrototypes(store, prefix), x, count);
  const model = await loadModel(store, prefix);
  try {
    return await predictOutputs(model, x, count);
  } finally {
    model.dispose();
  }
}

/** Accuracy per classification task from outputs and raw labels (records without a label skipped). */
export function accuracyByTask(meta: Pick<ModelMetadata, 'tasks'>, outputs: Float32Array[], count: number, labels: LabelledImages['labels']): Record<string, { accuracy: number; count: number }> {
  const result: Record<string, { accuracy: number; count: number }> = {};
  meta.tasks.forEach((head, t) => {
    const truth = labels[head.name];
    if (head.type !== 'classification' || !truth || !head.labels) return;
    const k = head.labels.length;
    let n = 0;
    let correct = 0;
    for (let i = 0; i < count; i++) {
      const want = truth[i];
      if (want === null || want === undefined) continue;
      let best = 0;
      for (let c = 1; c < k; c++) if (outputs[t][i * k + c] > outputs[t][i * k + best]) best = c;
      n++;
      if (head.labels[best] === want) correct++;
    }
    if (n) result[head.name] = { accuracy: correct / n, count: n };
  });
  return result;
}

/**
 * Test accuracy of a published version on labelled images. Classes the version
 * does not know count as errors (it cannot predict them).
 * @returns undefined when the version does not read images.
 */
export async function evaluateVersionOn(store: ObjectStore, meta: ModelMetadata, images: LabelledImages): Promise<Record<string, { accuracy: number; count: number }> | undefined> {
  if (meta.input.type !== 'image' || images.count === 0) return undefined;
  const { x } = await embedForBase(store, meta, images);
  return accuracyByTask(meta, await versionOutputs(store, meta, x, images.count), images.count, images.labels);
}
