/**
 * Fine-tuning the top of a frozen base, and the small training loop that
 * transfer uses (fine-tuning, continual learning with distillation).
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
import { mulberry32, shuffledIndices } from '../random.js';
import type { LayersModel, SymbolicTensor, Tensor, Variable } from '@tensorflow/tfjs';
import type { TaskHead } from '../schemas/model.js';
import { loadTf, type Tf } from '../tf/loader.js';
import { registerWasmGradKernels } from '../tf/wasm-grad-kernels.js';
import { EMBEDDING_INPUT, outputTaskNames } from './heads.js';
import { labelMask, taskKind, type TaskTargets } from './task-kinds.js';

export type Layer = LayersModel['layers'][number];

export class FineTuneError extends Error {
  override name = 'FineTuneError';
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
  if (available < n) throw new FineTuneError(`fineTune.layers is ${n} but the base has only ${available} layer${available === 1 ? '' : 's'} with weights below "${embeddingLayer}"`);
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
  const tensors = new Map<string, SymbolicTensor>([[plan.cutLayer, tf.layers.reshape({ targetShape: plan.cutShape, name: 'cut_reshape' }).apply(input) as SymbolicTensor]]);
  const unfrozen = new Set(plan.trainable);
  cloneLayers(tf, plan.topLayers.map((n) => graph.getLayer(n)), tensors, { rename: (n) => `${FINE_TUNED_PREFIX}${n}`, trainable: (l) => unfrozen.has(l.name) });
  let embedding = tensors.get(opts.embeddingLayer)!;
  if (opts.pooling === 'avg' && embedding.shape.length === 4) embedding = tf.layers.globalAveragePooling2d({ name: `${FINE_TUNED_PREFIX}pool` }).apply(embedding) as SymbolicTensor;
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

/** Targets of a split for trainTopModel: hard labels per task, or soft ones (distillation). */
export interface TopSplit {
  /** count×inputSize values (embeddings or flattened cut activations). */
  x: Float32Array;
  count: number;
  /** Hard targets per task (-1 = no label). */
  targets: Record<string, TaskTargets>;
  /** count×units outputs of the old model per task: the task learns to match them (Learning without Forgetting; the loss follows the task type). */
  soft?: Record<string, Float32Array>;
}

export interface TrainTopOptions {
  /** @default 5 */
  epochs?: number;
  /** @default 32 */
  batchSize?: number;
  /** Adam's learning rate. @default 0.0001 */
  learningRate?: number;
  /** @default 3 */
  patience?: number;
  /** Task heads in output order (their types pick the loss). */
  heads: TaskHead[];
  /** Temperature of the distillation loss on soft targets (Li & Hoiem 2016 use 2). @default 2 */
  temperature?: number;
  /** @default 42 */
  seed?: number;
  onEpoch?: (epoch: number, logs: Record<string, number>) => void | Promise<void>;
}

export interface TrainTopResult {
  history: Array<Record<string, number>>;
  bestEpoch: number;
  epochsRun: number;
  stoppedEarly: boolean;
}


/**
 * Trains the trainable layers of `model` with its layers in inference mode
 * (`training: false`): batch norm uses its moving statistics and keeps them, and
 * dropout is off, which is what fine-tuning a few top layers with a low learning
 * rate wants. Early stopping on the validation loss restores the best weights.
 */
export async function trainTopModel(model: LayersModel, data: { train: TopSplit; validation?: TopSplit }, opts: TrainTopOptions): Promise<TrainTopResult> {
  const { tf, backend } = await loadTf();
  if (backend === 'wasm') registerWasmGradKernels(tf);
  const epochs = opts.epochs ?? 5;
  const batchSize = opts.batchSize ?? 32;
  const patience = opts.patience ?? 3;
  const temperature = opts.temperature ?? 2;
  const names = outputTaskNames(model);
  const heads = names.map((n) => {
    const h = opts.heads.find((x) => x.name === n);
    if (!h) throw new FineTuneError(`no task head for output "${n}"`);
    return h;
  });
  const vars = model.trainableWeights.map((w) => w.read() as Variable);
  if (vars.length === 0) throw new FineTuneError('the model has no trainable layer');
  const size = model.inputs[0].shape[1] as number;
  const units = model.outputs.map((o) => o.shape[o.shape.length - 1] as number);

  const tensorsOf = (s: TopSplit) => ({
    x: tf.tensor2d(s.x, [s.count, size]),
    ys: heads.map((h, i) => (s.soft?.[h.name] ? tf.tensor2d(s.soft[h.name], [s.count, units[i]]) : tf.tensor2d(taskKind(h.type).targetMatrix(s.targets[h.name], units[i], h), [s.count, units[i]]))),
    masks: heads.map((h) => tf.tensor1d(s.soft?.[h.name] ? new Float32Array(s.count).fill(1) : labelMask(s.targets[h.name], s.count))),
    soft: heads.map((h) => Boolean(s.soft?.[h.name])),
  });
  // Distillation on the old model's outputs, by what a head outputs: class
  // probabilities (softened at the temperature, Li & Hoiem 2016), independent
  // per-unit probabilities (binary cross-entropy per unit), or values (MSE).
  const distill = (type: TaskHead['type'], yTrue: Tensor, yPred: Tensor) =>
    tf.tidy(() => {
      if (type === 'regression') return tf.mean(tf.square(tf.sub(yPred, yTrue)));
      if (type === 'multilabel') {
        const p = tf.clipByValue(yPred, 1e-7, 1 - 1e-7);
        return tf.mean(tf.neg(tf.add(tf.mul(yTrue, tf.log(p)), tf.mul(tf.sub(1, yTrue), tf.log(tf.sub(1, p))))));
      }
      const soften = (p: Tensor) => tf.softmax(tf.div(tf.log(tf.clipByValue(p, 1e-7, 1)), temperature));
      return tf.mean(tf.neg(tf.sum(tf.mul(soften(yTrue), tf.log(tf.clipByValue(soften(yPred), 1e-7, 1))), -1)));
    });
  const lossOn = (x: Tensor, ys: Tensor[], masks: Tensor[], soft: boolean[]) => {
    const out = model.apply(x, { training: false });
    const outs = Array.isArray(out) ? (out as Tensor[]) : [out as Tensor];
    return outs.map((o, i) => (soft[i] ? distill(heads[i].type, ys[i], o) : taskKind(heads[i].type).loss(tf, ys[i], o, masks[i]))).reduce((a, b) => tf.add(a, b)) as Tensor;
  };

  const train = tensorsOf(data.train);
  const validation = data.validation && data.validation.count > 0 ? tensorsOf(data.validation) : undefined;
  const optimizer = tf.train.adam(opts.learningRate ?? 0.0001);
  const random = mulberry32(opts.seed ?? 42);
  const history: Array<Record<string, number>> = [];
  let best = Infinity;
  let bestEpoch = -1;
  let bestWeights: Tensor[] | undefined;
  let wait = 0;
  try {
    for (let epoch = 0; epoch < epochs && wait < patience; epoch++) {
      const order = shuffledIndices(data.train.count, random);
      let sum = 0;
      for (let start = 0; start < order.length; start += batchSize) {
        const idx = tf.tensor1d(order.slice(start, start + batchSize), 'int32');
        const cost = optimizer.minimize(
          () => {
            const xb = tf.gather(train.x, idx);
            const ys = train.ys.map((y) => tf.gather(y, idx));
            const masks = train.masks.map((m) => tf.gather(m, idx));
            return lossOn(xb, ys, masks, train.soft) as ReturnType<Parameters<typeof optimizer.minimize>[0]>;
          },
          true,
          vars,
        );
        idx.dispose();
        sum += (await cost!.data())[0] * Math.min(batchSize, order.length - start);
        cost!.dispose();
      }
      const logs: Record<string, number> = { loss: sum / Math.max(1, order.length) };
      if (validation) {
        const v = tf.tidy(() => lossOn(validation.x, validation.ys, validation.masks, validation.soft));
        logs.val_loss = (await v.data())[0];
        v.dispose();
      }
      if (!Number.isFinite(logs.loss)) throw new FineTuneError(`fine-tuning diverged at epoch ${epoch + 1}; try a lower fineTune.learningRate`);
      const monitored = logs.val_loss ?? logs.loss;
      if (monitored < best) {
        best = monitored;
        bestEpoch = epoch;
        wait = 0;
        bestWeights?.forEach((w) => w.dispose());
        bestWeights = model.getWeights().map((w) => w.clone());
      } else wait++;
      history.push(logs);
      await opts.onEpoch?.(epoch, logs);
    }
    if (bestWeights) model.setWeights(bestWeights);
  } finally {
    bestWeights?.forEach((w) => w.dispose());
    optimizer.dispose();
    train.x.dispose();
    [...train.ys, ...train.masks, ...(validation ? [...validation.ys, ...validation.masks] : [])].forEach((y) => y.dispose());
    validation?.x.dispose();
  }
  return { history, bestEpoch, epochsRun: history.length, stoppedEarly: history.length < epochs };
}

/**
 * Runs a model on count×size inputs in batches; returns each output as one
 * Float32Array (count×units), in output order.
 */
export async function predictOutputs(model: LayersModel, x: Float32Array, count: number, batchSize = 64): Promise<Float32Array[]> {
  const { tf } = await loadTf();
  const size = model.inputs[0].shape[1] as number;
  const units = model.outputs.map((o) => o.shape[o.shape.length - 1] as number);
  const result = units.map((u) => new Float32Array(count * u));
  for (let start = 0; start < count; start += batchSize) {
    const n = Math.min(batchSize, count - start);
    const outs = tf.tidy(() => {
      const y = model.predict(tf.tensor2d(x.subarray(start * size, (start + n) * size), [n, size]));
      return Array.isArray(y) ? y : [y as Tensor];
    });
    for (let i = 0; i < outs.length; i++) {
      result[i].set((await outs[i].data()) as Float32Array, start * units[i]);
      outs[i].dispose();
    }
  }
  return result;
}
