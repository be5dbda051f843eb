/**
 * Fine-tuning the top of a frozen base: where to cut it and the model that trains
 * (cut → top layers of the base → heads). The training itself is the one loop of
 * shared/ml/train.ts, in inference mode.
 *
 * The base runs once per image up to a *cut*: the input of the top part that
 * trains. Those activations are cached like embeddings, and only a small model
 * (cut → top layers of the base → heads) trains on them. So the expensive frozen
 * convolutions never run more than once, and only the top layers need gradient
 * kernels (which the wasm backend lacks for convolutions: see
 * shared/tf/wasm-grad-kernels.ts, registered here before training).
 *
 * The published model is that small model: its input is the flattened cut
 * activation (named `embedding` like any head model, so predict and the
 * trainer read it the same way), and metadata.base.cut tells the embedder
 * where to stop.
 */
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs';
import { loadTf, type Tf } from '../tf/loader.js';
import { EMBEDDING_INPUT } from './architectures.js';
import { UnknownBaseModelError, type ResolvedBase } from './base-models.js';
import { loadModel, objectStoreIO } from './model-io.js';
import { versionPrefix } from '../models/registry.js';
import type { ObjectStore } from '../ports/object-store.js';
import { UserError } from '../errors.js';

export type Layer = LayersModel['layers'][number];

/** The spec asks for a fine-tuning the base cannot give (too few layers, no single-tensor cut, base "none"). */
export class FineTuneError extends UserError {
  override name = 'FineTuneError';
  constructor(message: string) {
    super('INVALID_SPEC', message);
  }
}

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
const isBatchNorm = (l: Layer) => l.getClassName() === 'BatchNormalization';
const isInput = (l: Layer) => l.getClassName() === 'InputLayer';
/** Layers that hold trainable parameters; batch norm is left out on purpose (it stays frozen). */
const isTrainableKind = (l: Layer) => l.weights.length > 0 && !isBatchNorm(l);
const inboundNames = (l: Layer): string[] => l.inboundNodes[0]?.inboundLayers.map((x) => x.name) ?? [];

export interface FineTunePlan {
  /** Layer whose output is the only tensor feeding the top part: the embedder stops here. */
  cutLayer: string;
  /** Shape of that output without the batch axis. */
  cutShape: number[];
  /** Layers after the cut up to the embedding layer, in topological order. */
  topLayers: string[];
  /** The top N layers with weights (batch norm excluded), by name. */
  trainable: string[];
}

/**
 * Where to cut a base to fine-tune its top `n` layers. The cut is the nearest
 * point below them where a single tensor separates the frozen part from the top
 * (MobileNetV2's residual blocks have two tensors crossing inside a block), so
 * the cached activations are one array per image. Layers between the cut and the
 * top n stay frozen; batch-norm layers are never unfrozen (their statistics come
 * from far more data than a fine-tuning set) and run in inference mode.
 * @throws FineTuneError when the embedding layer is missing or the base has fewer than n such layers.
 */
export function planFineTune(graph: LayersModel, embeddingLayer: string, n: number): FineTunePlan {
  const byName = new Map(graph.layers.map((l) => [l.name, l]));
  if (!byName.has(embeddingLayer)) throw new FineTuneError(`the base has no layer "${embeddingLayer}"`);
  const ancestors = new Set<string>();
  const stack = [embeddingLayer];
  while (stack.length) {
    const name = stack.pop()!;
    if (ancestors.has(name)) continue;
    ancestors.add(name);
    stack.push(...inboundNames(byName.get(name)!));
  }
  // graph.layers is in topological order for functional models.
  const order = graph.layers.filter((l) => ancestors.has(l.name));
  const available = order.filter(isTrainableKind).length;
  if (available < n)
    throw new FineTuneError(
      `fineTune.layers is ${n} but the base has only ${available} layer${available === 1 ? '' : 's'} with weights below "${embeddingLayer}"`,
    );
  for (let i = order.length - 2; i >= 0; i--) {
    const after = order.slice(i + 1);
    const names = new Set(after.map((l) => l.name));
    const weighted = after.filter(isTrainableKind);
    if (weighted.length < n) continue;
    const frontier = new Set(after.flatMap(inboundNames).filter((x) => !names.has(x)));
    if (frontier.size !== 1 || !frontier.has(order[i].name)) continue;
    const shape = (order[i].outputShape as Array<number | null>).slice(1) as number[];
    return { cutLayer: order[i].name, cutShape: shape, topLayers: after.map((l) => l.name), trainable: weighted.slice(-n).map((l) => l.name) };
  }
  throw new FineTuneError(`no single-tensor cut below the top ${n} layers of the base`);
}

export interface CloneOptions {
  /** Name of each clone. @default the same name */
  rename?: (name: string) => string;
  /** Whether a clone trains. @default the source layer's flag */
  trainable?: (layer: Layer) => boolean;
}

/**
 * Applies fresh copies of `layers` (same config and weights, independent
 * variables) to the tensors in `tensors`, keyed by the name of the source layer
 * that produced them; adds each clone's output under its source's name.
 * Input layers are skipped: their tensors must be in the map already.
 */
export function cloneLayers(tf: Tf, layers: Layer[], tensors: Map<string, SymbolicTensor>, opts: CloneOptions = {}): void {
  const registry = tf.serialization.SerializationMap.getMap().classNameMap;
  for (const layer of layers) {
    if (isInput(layer)) continue;
    const entry = registry[layer.getClassName()];
    if (!entry) throw new FineTuneError(`layer "${layer.name}" has an unknown class ${layer.getClassName()}`);
    const config = { ...layer.getConfig(), name: opts.rename ? opts.rename(layer.name) : layer.name };
    delete (config as Record<string, unknown>).batchInputShape;
    const clone = entry[1](entry[0], config) as unknown as Layer;
    const inputs = inboundNames(layer).map((name) => {
      const t = tensors.get(name);
      if (!t) throw new FineTuneError(`layer "${layer.name}" reads "${name}", which is not part of the copied graph`);
      return t;
    });
    const y = clone.apply(inputs.length === 1 ? inputs[0] : inputs) as SymbolicTensor;
    clone.setWeights(layer.getWeights());
    clone.trainable = opts.trainable ? opts.trainable(layer) : layer.trainable;
    tensors.set(layer.name, y);
  }
}

/** The tensor a head model's task outputs read (after its trunk, before dropout and the output layer). */
export function featureLayerOf(heads: LayersModel): string {
  const byName = new Map(heads.layers.map((l) => [l.name, l]));
  const first = heads.outputLayers[0];
  let name = inboundNames(first)[0];
  while (name && byName.get(name)?.getClassName() === 'Dropout') name = inboundNames(byName.get(name)!)[0];
  return name ?? heads.inputLayers[0].name;
}

export interface BuildFineTuneModelOptions {
  /** The loaded base (or trained model used as a base); its layers are copied, not shared. */
  graph: LayersModel;
  plan: FineTunePlan;
  embeddingLayer: string;
  /** Pooling of the embedding layer's output, as in the base descriptor. @default none */
  pooling?: 'none' | 'avg';
  /** Trained heads on the embedding (output layers `head_<task>`). */
  heads: LayersModel;
}

/** Copied base layers get a prefix so they never clash with head layer names. */
export const FINE_TUNED_PREFIX = 'base_';

/** The top of the base on a flat cut input: returns the input and the (flattened) embedding tensor. */
async function applyTop(opts: Omit<BuildFineTuneModelOptions, 'heads'>): Promise<{ tf: Tf; input: SymbolicTensor; embedding: SymbolicTensor }> {
  const { tf } = await loadTf();
  const { plan, graph } = opts;
  const input = tf.input({ shape: [prod(plan.cutShape)], name: EMBEDDING_INPUT });
  const tensors = new Map<string, SymbolicTensor>([
    [plan.cutLayer, tf.layers.reshape({ targetShape: plan.cutShape, name: 'cut_reshape' }).apply(input) as SymbolicTensor],
  ]);
  const unfrozen = new Set(plan.trainable);
  cloneLayers(
    tf,
    plan.topLayers.map((n) => graph.getLayer(n)),
    tensors,
    { rename: (n) => `${FINE_TUNED_PREFIX}${n}`, trainable: (l) => unfrozen.has(l.name) },
  );
  let embedding = tensors.get(opts.embeddingLayer)!;
  if (opts.pooling === 'avg' && embedding.shape.length === 4)
    embedding = tf.layers.globalAveragePooling2d({ name: `${FINE_TUNED_PREFIX}pool` }).apply(embedding) as SymbolicTensor;
  if (embedding.shape.length > 2) embedding = tf.layers.flatten({ name: `${FINE_TUNED_PREFIX}flatten` }).apply(embedding) as SymbolicTensor;
  return { tf, input, embedding };
}

/** The frozen top of the base alone (cut activations → embedding), to compute the embeddings the heads first train on. */
export async function buildTopFeatureModel(opts: Omit<BuildFineTuneModelOptions, 'heads'>): Promise<LayersModel> {
  const { tf, input, embedding } = await applyTop(opts);
  return tf.model({ inputs: input, outputs: embedding, name: 'base_top' });
}

/**
 * One model from the flattened cut activations to every task output: the top
 * of the base (the plan's trainable layers unfrozen) followed by the heads.
 */
export async function buildFineTuneModel(opts: BuildFineTuneModelOptions): Promise<LayersModel> {
  const { tf, input, embedding } = await applyTop(opts);
  const headTensors = new Map<string, SymbolicTensor>([[opts.heads.inputLayers[0].name, embedding]]);
  cloneLayers(tf, opts.heads.layers, headTensors);
  return tf.model({ inputs: input, outputs: opts.heads.outputLayers.map((l) => headTensors.get(l.name)!), name: 'fine_tuned' });
}

/**
 * The graph a base's top layers come from when fine-tuning: the pretrained
 * model itself, or a trained model's stored head model. The caller disposes it.
 */
export async function loadBaseGraph(store: ObjectStore, base: ResolvedBase): Promise<{ graph: LayersModel; embeddingLayer: string; pooling: 'none' | 'avg' }> {
  const { tf } = await loadTf();
  if (base.kind === 'pretrained') {
    const prefix = base.descriptor.modelKey.replace(/\/model\.json$/, '');
    return {
      graph: await tf.loadLayersModel(objectStoreIO(store, prefix)),
      embeddingLayer: base.descriptor.embedding.layer,
      pooling: base.descriptor.embedding.pooling,
    };
  }
  if (base.kind === 'model')
    return { graph: await loadModel(store, versionPrefix(base.source.model, base.source.version)), embeddingLayer: base.layer, pooling: 'none' };
  throw new UnknownBaseModelError('base "none" has no layers to fine-tune');
}
