/**
 * Turns a head model's outputs into the predict API's per-task predictions, from
 * one forward pass over a batch of embeddings.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { TaskHead } from '../schemas/model.js';
import type { TaskPrediction } from '../schemas/predict.js';
import { loadTf } from '../tf/loader.js';
import { taskKind } from './task-kinds.js';

/** A request named a task the model does not have (the API answers 400). */
export class UnknownTaskError extends Error {
  override name = 'UnknownTaskError';
  constructor(
    readonly tasks: string[],
    readonly known: string[],
    message = `unknown task${tasks.length > 1 ? 's' : ''} ${tasks.map((t) => `"${t}"`).join(', ')}; this model has ${known.map((t) => `"${t}"`).join(', ')}`,
  ) {
    super(message);
  }
}

/**
 * A request's `tasks` list is empty: it would get one empty object per input. A
 * kind of UnknownTaskError, so the API answers it the same way (400).
 */
export class NoTasksRequestedError extends UnknownTaskError {
  override name = 'NoTasksRequestedError';
  constructor(known: string[]) {
    super(
      [],
      known,
      `"tasks" is empty; name at least one of this model's tasks (${known.map((t) => `"${t}"`).join(', ')}) or leave "tasks" out for every main task`,
    );
  }
}

export interface PredictTasksOptions {
  /** Tasks to return, auxiliary ones included when named. @default every non-auxiliary task */
  tasks?: string[];
  /** Scores listed per classification task. */
  topK: number;
}

/** Which heads a request gets, validated before any compute. @throws UnknownTaskError (NoTasksRequestedError for an empty list) */
export function selectTasks(heads: TaskHead[], tasks?: string[]): TaskHead[] {
  if (!tasks) return heads.filter((h) => !h.auxiliary);
  const names = new Set(heads.map((h) => h.name));
  if (tasks.length === 0) throw new NoTasksRequestedError([...names]);
  const unknown = tasks.filter((t) => !names.has(t));
  if (unknown.length) throw new UnknownTaskError(unknown, [...names]);
  const wanted = new Set(tasks);
  return heads.filter((h) => wanted.has(h.name));
}

/**
 * @param heads the model's tasks in output order (metadata.tasks)
 * @param embeddings count×embeddingSize
 * @returns one record per input, keyed by task name
 */
export async function predictTasks(
  model: LayersModel,
  heads: TaskHead[],
  embeddings: Float32Array,
  count: number,
  opts: PredictTasksOptions,
): Promise<Array<Record<string, TaskPrediction>>> {
  const selected = selectTasks(heads, opts.tasks);
  if (model.outputs.length !== heads.length) throw new Error(`model has ${model.outputs.length} outputs but ${heads.length} tasks`);
  const { tf } = await loadTf();
  const size = model.inputs[0].shape[1] as number;
  if (embeddings.length !== count * size) throw new Error(`expected ${count}×${size} embedding values, got ${embeddings.length}`);
  const x = tf.tensor2d(embeddings, [count, size]);
  const out = model.predict(x);
  const outs = Array.isArray(out) ? out : [out];
  try {
    const results: Array<Record<string, TaskPrediction>> = Array.from({ length: count }, () => ({}));
    for (const head of selected) {
      const i = heads.indexOf(head);
      const values = (await outs[i].data()) as Float32Array;
      const units = values.length / count;
      const kind = taskKind(head.type);
      for (let r = 0; r < count; r++) results[r][head.name] = kind.format(values.subarray(r * units, (r + 1) * units), head, opts.topK);
    }
    return results;
  } finally {
    x.dispose();
    outs.forEach((o) => o.dispose());
  }
}
