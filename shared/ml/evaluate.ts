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
import { predictOutputs } from './inference.js';
import { loadModel } from './model-io.js';
import { loadPrototypes, scorePrototypes } from './prototype-classifier.js';
import { taskMetrics } from './mtl-evaluate.js';
import { taskKind } from './task-kinds.js';
import type { TaskHead } from '../schemas/model.js';

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
export function accuracyByTask(
  meta: Pick<ModelMetadata, 'tasks'>,
  outputs: Float32Array[],
  count: number,
  labels: LabelledImages['labels'],
): Record<string, { accuracy: number; count: number }> {
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

/** The figure the promotion gate compares a task by, per kind: higher is better for each. */
export const GATE_METRIC: Record<TaskHead['type'], 'accuracy' | 'microF1' | 'r2'> = { classification: 'accuracy', multilabel: 'microF1', regression: 'r2' };

/** One task's gate figure on some records. */
export interface GateFigure {
  metric: 'accuracy' | 'microF1' | 'r2';
  value: number;
  count: number;
}

/**
 * The gate figure of every task from outputs and raw labels: accuracy (classes the
 * model does not know count as errors), micro-F1 at the head's thresholds, or R² in
 * real units. A multilabel or regression task is left out when its labels do not
 * fit the head (a label it does not know, another vector size) or R² cannot be computed.
 */
export function gateFiguresByTask(
  meta: Pick<ModelMetadata, 'tasks'>,
  outputs: Float32Array[],
  count: number,
  labels: LabelledImages['labels'],
): Record<string, GateFigure> {
  const result: Record<string, GateFigure> = {};
  const accuracies = accuracyByTask(meta, outputs, count, labels);
  for (const [task, a] of Object.entries(accuracies)) result[task] = { metric: 'accuracy', value: a.accuracy, count: a.count };
  meta.tasks.forEach((head, t) => {
    const raw = labels[head.name];
    if (head.type === 'classification' || !raw) return;
    let targets;
    try {
      targets = taskKind(head.type).encodeLabels(raw, head);
    } catch {
      return;
    }
    const m = taskMetrics(head, outputs[t], { x: new Float32Array(0), count, targets: { [head.name]: targets } });
    if (m?.type === 'multilabel') result[head.name] = { metric: 'microF1', value: m.microF1, count: m.count };
    else if (m?.type === 'regression' && m.r2 !== null) result[head.name] = { metric: 'r2', value: m.r2, count: m.count };
  });
  return result;
}

/**
 * Test accuracy of a published version on labelled images. Classes the version
 * does not know count as errors (it cannot predict them).
 * @returns undefined when the version does not read images.
 */
export async function evaluateVersionOn(
  store: ObjectStore,
  meta: ModelMetadata,
  images: LabelledImages,
): Promise<Record<string, { accuracy: number; count: number }> | undefined> {
  if (meta.input.type !== 'image' || images.count === 0) return undefined;
  const { x } = await embedForBase(store, meta, images);
  return accuracyByTask(meta, await versionOutputs(store, meta, x, images.count), images.count, images.labels);
}
