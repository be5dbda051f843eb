/**
 * Heads on top of a frozen embedding: the part of a model that trains.
 *
 * An architecture (keyed by the spec's `sharing.method`) turns the embedding into
 * one feature tensor per task; `buildHeadModel` then adds each task's dropout and
 * output layer, named `head_<task>`, in the order of `tasks` (the order stored in
 * the model metadata and used by predict).
 */
import type { LayersModel, Scalar, SymbolicTensor } from '@tensorflow/tfjs';
import type { TaskHead } from '../schemas/model.js';
import type { Sharing } from '../schemas/spec.js';
import { loadTf, type Tf } from '../tf/loader.js';
import { taskKind } from './task-kinds.js';
import { UserError } from '../errors.js';

export const EMBEDDING_INPUT = 'embedding';
export const headLayerName = (task: string) => `head_${task}`;

export class UnsupportedArchitectureError extends UserError {
  override name = 'UnsupportedArchitectureError';
  constructor(message: string) {
    super('UNSUPPORTED_SPEC', message);
  }
}

export interface ArchitectureContext {
  tf: Tf;
  input: SymbolicTensor;
  tasks: TaskHead[];
  /** Seed for initialisers; each layer adds its own offset so layers differ. */
  seed: number;
}

export interface PenaltyContext {
  tf: Tf;
  model: LayersModel;
  /** Task names in output order. */
  tasks: string[];
}

/** Builds the shared and per-task hidden layers; returns the features each task's output reads. */
export interface Architecture<S extends Sharing = Sharing> {
  build(ctx: ArchitectureContext, sharing: S): Record<string, SymbolicTensor>;
  /**
   * A term added to the training loss that ties parameters together (soft sharing),
   * computed from the model's current weights so its gradient reaches them.
   * Call it inside a gradient scope; undefined when the architecture has none.
   */
  penalty?(ctx: PenaltyContext, sharing: S): Scalar | undefined;
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

export const towerLayerName = (task: string, i: number) => `tower_${task}_${i}`;

/**
 * Soft parameter sharing (Duong et al., 2015): each task has its own tower of dense
 * ReLU layers, all of the same sizes, and the loss adds λ·Σ‖W_a − W_b‖² over the
 * corresponding layers of every pair of towers (kernels and biases), which pulls
 * the towers towards each other without forcing them to be one.
 */
export const softSharing: Architecture<Extract<Sharing, { method: 'soft' }>> = {
  build({ tf, input, tasks, seed }, sharing) {
    return Object.fromEntries(
      tasks.map((task) => {
        let x = input;
        sharing.tower.forEach((units, i) => {
          // Every tower starts from the same initial weights (same seed per depth):
          // the penalty starts at 0 and grows only as the tasks pull them apart.
          x = tf.layers
            .dense({ units, activation: 'relu', name: towerLayerName(task.name, i), kernelInitializer: tf.initializers.heNormal({ seed: seed + i + 1 }) })
            .apply(x) as SymbolicTensor;
        });
        return [task.name, x];
      }),
    );
  },
  penalty({ tf, model, tasks }, sharing) {
    if (sharing.l2 === 0 || tasks.length < 2) return undefined;
    const terms: Scalar[] = [];
    sharing.tower.forEach((_, i) => {
      const weights = tasks.map((task) => model.getLayer(towerLayerName(task, i)).trainableWeights.map((w) => w.read()));
      for (let a = 0; a < weights.length; a++) {
        for (let b = a + 1; b < weights.length; b++) {
          weights[a].forEach((wa, k) => terms.push(tf.sum(tf.squaredDifference(wa, weights[b][k]))));
        }
      }
    });
    return tf.mul<Scalar>(tf.addN(terms), sharing.l2);
  },
};

export const ARCHITECTURES: { [M in Sharing['method']]: Architecture<Extract<Sharing, { method: M }>> } = {
  hard: hardSharing,
  soft: softSharing,
};

function architectureFor<S extends Sharing>(sharing: S): Architecture<S> {
  const arch = ARCHITECTURES[sharing.method] as unknown as Architecture<S> | undefined;
  if (!arch) throw new UnsupportedArchitectureError(`unknown sharing method "${(sharing as { method: string }).method}"; use "hard" or "soft"`);
  return arch;
}

/**
 * The architecture's penalty on `model`'s current weights (0 for hard sharing);
 * call inside a gradient scope (tf.variableGrads / optimizer.minimize).
 */
export function sharingPenalty(tf: Tf, model: LayersModel, sharing: Sharing): Scalar | undefined {
  return architectureFor(sharing).penalty?.({ tf, model, tasks: outputTaskNames(model) }, sharing);
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
 * Builds an (uncompiled) model from embeddings to one output per task: the
 * architecture's hidden layers, then per task a dropout and its output layer.
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
    // No seed: a seeded tfjs dropout draws the same mask on every call, so each batch
    // position would always drop the same units instead of a fresh random subset.
    if (dropout > 0) x = tf.layers.dropout({ rate: dropout, name: `dropout_${task.name}` }).apply(x) as SymbolicTensor;
    return tf.layers
      .dense({
        units: kind.outputUnits(task),
        activation: kind.activation,
        name: headLayerName(task.name),
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 200 + i }),
      })
      .apply(x) as SymbolicTensor;
  });
  return tf.model({ inputs: input, outputs, name: 'heads' });
}

/** Task names of a head model's outputs, in output order. */
export function outputTaskNames(model: LayersModel): string[] {
  return model.outputNames.map((n) => n.replace(/^head_/, '').replace(/\/.*$/, ''));
}
