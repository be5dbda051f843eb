/**
 * Heads on top of a frozen embedding: the part of a model that trains.
 *
 * An architecture (keyed by the spec's `sharing.method`) turns the embedding into
 * one feature tensor per task; `buildHeadModel` then adds each task's dropout and
 * output layer, named `head_<task>`, in the order of `tasks` (the order stored in
 * the model metadata and used by predict).
 */
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs';
import type { TaskHead } from '../schemas/model.js';
import type { Sharing } from '../schemas/spec.js';
import { loadTf, type Tf } from '../tf/loader.js';
import { taskKind } from './task-kinds.js';

export const EMBEDDING_INPUT = 'embedding';
export const headLayerName = (task: string) => `head_${task}`;

export class UnsupportedArchitectureError extends Error {
  override name = 'UnsupportedArchitectureError';
}

export interface ArchitectureContext {
  tf: Tf;
  input: SymbolicTensor;
  tasks: TaskHead[];
  /** Seed for initialisers; each layer adds its own offset so layers differ. */
  seed: number;
}

/** Builds the shared and per-task hidden layers; returns the features each task's output reads. */
export interface Architecture<S extends Sharing = Sharing> {
  build(ctx: ArchitectureContext, sharing: S): Record<string, SymbolicTensor>;
}

/** Hard parameter sharing: one trunk of dense ReLU layers shared by every task. */
export const hardSharing: Architecture<Extract<Sharing, { method: 'hard' }>> = {
  build({ tf, input, tasks, seed }, sharing) {
    let x = input;
    sharing.trunk.forEach((units, i) => {
      x = tf.layers
        .dense({ units, activation: 'relu', name: `trunk_${i}`, kernelInitializer: tf.initializers.heNormal({ seed: seed + i + 1 }) })
        .apply(x) as SymbolicTensor;
    });
    return Object.fromEntries(tasks.map((t) => [t.name, x]));
  },
};

export const ARCHITECTURES: { [M in Sharing['method']]: Architecture<Extract<Sharing, { method: M }>> } = {
  hard: hardSharing,
  soft: {
    build() {
      throw new UnsupportedArchitectureError('sharing method "soft" is not supported yet; use {"method": "hard"}');
    },
  },
};

function architectureFor<S extends Sharing>(sharing: S): Architecture<S> {
  return ARCHITECTURES[sharing.method] as unknown as Architecture<S>;
}

export interface BuildHeadModelOptions {
  /** Length of the embedding vectors the model reads. */
  embeddingSize: number;
  /** Tasks in output order; classification tasks carry their class labels. */
  tasks: TaskHead[];
  sharing: Sharing;
  /** Dropout before each task's output layer. @default 0.2 */
  dropout?: number;
  /** @default 42 */
  seed?: number;
}

/**
 * Builds an (uncompiled) model from embeddings to one output per task.
 * @throws UnsupportedArchitectureError / UnsupportedTaskTypeError for choices not built yet.
 */
export async function buildHeadModel(opts: BuildHeadModelOptions): Promise<LayersModel> {
  const { tf } = await loadTf();
  const seed = opts.seed ?? 42;
  const dropout = opts.dropout ?? 0.2;
  if (opts.tasks.length === 0) throw new UnsupportedArchitectureError('a model needs at least one task');
  const input = tf.input({ shape: [opts.embeddingSize], name: EMBEDDING_INPUT });
  const features = architectureFor(opts.sharing).build({ tf, input, tasks: opts.tasks, seed }, opts.sharing);
  const outputs = opts.tasks.map((task, i) => {
    const kind = taskKind(task.type);
    let x = features[task.name];
    if (dropout > 0) x = tf.layers.dropout({ rate: dropout, seed: seed + 100 + i, name: `dropout_${task.name}` }).apply(x) as SymbolicTensor;
    return tf.layers
      .dense({ units: kind.outputUnits(task), activation: kind.activation, name: headLayerName(task.name), kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 200 + i }) })
      .apply(x) as SymbolicTensor;
  });
  return tf.model({ inputs: input, outputs, name: 'heads' });
}

/** Task names of a head model's outputs, in output order. */
export function outputTaskNames(model: LayersModel): string[] {
  return model.outputNames.map((n) => n.replace(/^head_/, '').replace(/\/.*$/, ''));
}
