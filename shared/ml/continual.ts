/**
 * Continual learning: `from: "<model>@<version>"` extends a published model with
 * new tasks or new classes of a task, on the same embedder.
 *
 * - Trunk frozen (the default): the old trunk and the old heads are copied and
 *   frozen; only new heads (and heads that gained classes) train. The old heads'
 *   outputs are then bit-identical to the old model's.
 * - Trunk unfrozen (`fineTune` set in the spec): everything trains, and each old
 *   head is kept close to what it answered before by distillation on its own
 *   earlier outputs for the new images (Learning without Forgetting, Li & Hoiem
 *   2016: soft targets at temperature 2).
 */
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs';
import { ModelNotFoundError, resolveModel } from '../models/registry.js';
import type { ObjectStore } from '../ports/object-store.js';
import type { ModelMetadata, TaskHead } from '../schemas/model.js';
import { loadTf } from '../tf/loader.js';
import { cloneLayers, featureLayerOf } from './fine-tune.js';
import { EMBEDDING_INPUT, headLayerName } from './architectures.js';
import { taskKind } from './task-kinds.js';
import { UserError } from '../errors.js';

export class ContinualError extends UserError {
  override name = 'ContinualError';
  constructor(message: string) {
    super('INVALID_SPEC', message);
  }
}

/** Resolves `<model>@<version or alias>`. @throws ContinualError when it does not exist or cannot be extended. */
export async function resolveFrom(store: ObjectStore, from: string): Promise<ModelMetadata> {
  const [model, version] = from.split('@');
  try {
    const meta = await resolveModel(store, model, version);
    if (meta.kind !== 'train') throw new ContinualError(`"from": ${from} is a ${meta.kind} model; only trained models can be extended`);
    return meta;
  } catch (err) {
    if (err instanceof ModelNotFoundError) throw new ContinualError(`"from": ${err.message}`);
    throw err;
  }
}

export interface MergedHeads {
  /** Old tasks first (in their old order), then the new ones. */
  heads: TaskHead[];
  /** Old tasks whose head is copied as is. */
  unchanged: string[];
  /** Old classification tasks that gained classes: their old class count. */
  extended: Record<string, number>;
  added: string[];
}

/**
 * The tasks of the extended model. An old classification task that the new data
 * labels with new classes keeps its old classes in their old output positions and
 * gains the new ones after them.
 */
export function mergeHeads(old: TaskHead[], fresh: TaskHead[]): MergedHeads {
  const freshByName = new Map(fresh.map((h) => [h.name, h]));
  const extended: Record<string, number> = {};
  const unchanged: string[] = [];
  const heads = old.map((h) => {
    const f = freshByName.get(h.name);
    if (!f) {
      unchanged.push(h.name);
      return h;
    }
    if (f.type !== h.type) throw new ContinualError(`task "${h.name}" is ${h.type} in the old model but ${f.type} in the spec`);
    const more = h.type === 'classification' ? (f.labels ?? []).filter((l) => !h.labels!.includes(l)) : [];
    if (more.length === 0) {
      unchanged.push(h.name);
      return h;
    }
    extended[h.name] = h.labels!.length;
    return { ...h, labels: [...h.labels!, ...more] };
  });
  const added = fresh.filter((f) => !old.some((h) => h.name === f.name));
  return { heads: [...heads, ...added], unchanged, extended, added: added.map((h) => h.name) };
}

export interface BuildContinualModelOptions {
  /** The old model as stored (input: its embeddings). */
  old: LayersModel;
  merged: MergedHeads;
  /** Freeze the old trunk and old heads. @default true */
  trunkFrozen?: boolean;
  /** Dropout before each new head (off during transfer training, kept for the record). @default 0.2 */
  dropout?: number;
  /** @default 42 */
  seed?: number;
}

/**
 * The old model's layers (copied, weights included) with new heads on the
 * features its heads read, and wider heads for tasks that gained classes
 * (old classes' weights copied in place).
 */
export async function buildContinualModel(opts: BuildContinualModelOptions): Promise<LayersModel> {
  const { tf } = await loadTf();
  const frozen = opts.trunkFrozen ?? true;
  const seed = opts.seed ?? 42;
  const { old, merged } = opts;
  const size = old.inputs[0].shape[1] as number;
  const input = tf.input({ shape: [size], name: EMBEDDING_INPUT });
  const tensors = new Map<string, SymbolicTensor>([[old.inputLayers[0].name, input]]);
  const skip = new Set(Object.keys(merged.extended).map(headLayerName));
  cloneLayers(
    tf,
    old.layers.filter((l) => !skip.has(l.name)),
    tensors,
    { trainable: (l) => !frozen && l.weights.length > 0 && l.getClassName() !== 'BatchNormalization' },
  );
  const feature = tensors.get(featureLayerOf(old))!;
  const outputs = merged.heads.map((h, i) => {
    const kind = taskKind(h.type);
    if (merged.unchanged.includes(h.name)) return tensors.get(headLayerName(h.name))!;
    let x = tensors.get(`dropout_${h.name}`) ?? feature;
    if (!tensors.has(`dropout_${h.name}`) && (opts.dropout ?? 0.2) > 0) {
      x = tf.layers.dropout({ rate: opts.dropout ?? 0.2, seed: seed + 100 + i, name: `dropout_${h.name}` }).apply(x) as SymbolicTensor;
    }
    const layer = tf.layers.dense({
      units: kind.outputUnits(h),
      activation: kind.activation,
      name: headLayerName(h.name),
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 200 + i }),
    });
    const y = layer.apply(x) as SymbolicTensor;
    const k = merged.extended[h.name];
    if (k !== undefined) {
      // Old classes keep their weights and positions; only the new columns start fresh.
      const [kernel, bias] = old.getLayer(headLayerName(h.name)).getWeights();
      const [newKernel, newBias] = layer.getWeights();
      const units = newKernel.shape[1]!;
      const w = tf.tidy(() => [tf.concat([kernel, newKernel.slice([0, k], [-1, units - k])], 1), tf.concat([bias, newBias.slice([k], [units - k])], 0)]);
      layer.setWeights(w);
      w.forEach((t) => t.dispose());
    }
    return y;
  });
  return tf.model({ inputs: input, outputs, name: 'continual' });
}
