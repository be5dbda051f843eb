/**
 * Exports a TensorFlow.js layers model (a base cut at one or more layers, or a
 * model this platform trained) to an ONNX graph, so onnxruntime can run it.
 *
 * Hand-written because no maintained converter exists for tfjs layers models in
 * JavaScript (tf2onnx and onnxmltools are Python and read Keras/SavedModel files).
 * It walks the model's layer graph once, in topological order, and maps each layer
 * to ONNX operators (opset 13; see graph.ts). Image tensors are kept NCHW inside
 * the graph, the layout ONNX convolutions use: the NHWC input is transposed once
 * after normalisation, and tensors go back to NHWC only where Keras semantics
 * depend on the order (Flatten, Reshape, the outputs).
 *
 * A layer with no mapping fails the export with UnsupportedLayerError naming it;
 * callers then keep the tfjs engine for that model.
 */
import type { LayersModel, SymbolicTensor, Tensor } from '@tensorflow/tfjs';
import { UserError } from '../../errors.js';
import { GraphBuilder, type Initializer } from './graph.js';
import { cutParts } from '../cuts.js';

type Layer = LayersModel['layers'][number];
type Config = Record<string, unknown>;

export class UnsupportedLayerError extends UserError {
  override name = 'UnsupportedLayerError';
  constructor(
    readonly layer: string,
    readonly className: string,
    detail = '',
  ) {
    super('UNSUPPORTED_SPEC', `cannot export layer "${layer}" (${className}) to ONNX${detail ? `: ${detail}` : ''}`);
  }
}

export interface OnnxOutput {
  /** Name of the graph output. */
  name: string;
  /** Layer whose output it is. */
  layer: string;
  /** `avg`: global average pooling of a 4-D output first. @default 'none' */
  pooling?: 'none' | 'avg';
}

export interface ExportOnnxOptions {
  outputs: OnnxOutput[];
  /** Name of the graph input. @default 'image' for 4-D inputs, 'features' otherwise */
  inputName?: string;
  /** Applied to the input inside the graph (x·scale + offset). @default none */
  normalization?: { scale: number; offset: number };
  /** Strings stored in the model's metadata_props. */
  metadata?: Record<string, string>;
  /** @default the model's name */
  graphName?: string;
}

/** A value of the graph: its name, and its Keras shape (NHWC for images; stored NCHW when rank 4). */
interface Value {
  name: string;
  shape: number[];
}

interface Ctx {
  g: GraphBuilder;
  layer: Layer;
  config: Config;
  inputs: Value[];
  /** Convolutions whose output only feeds one layer, by layer name: batch norm can fold into them. */
  foldable: Map<string, { weight: Initializer; bias: Initializer; out: string }>;
}

/** Keras shapes without the batch axis. */
const featureShape = (t: SymbolicTensor): number[] => t.shape.slice(1).map((d) => d ?? -1);
const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
const read = (t: Tensor) => t.dataSync() as Float32Array;
const pair = (v: unknown, fallback: number): [number, number] =>
  Array.isArray(v) ? [v[0], v[1] ?? v[0]] : typeof v === 'number' ? [v, v] : [fallback, fallback];
/** Keras channel-last axis of a rank-4 tensor → its axis in NCHW. */
const NCHW_AXIS = [0, 2, 3, 1];

function weightsByName(layer: Layer): Map<string, Tensor> {
  const values = layer.getWeights();
  return new Map(layer.weights.map((w, i) => [w.originalName.split('/').pop()!, values[i]]));
}

function toNhwc(g: GraphBuilder, v: Value): string {
  return v.shape.length === 3 ? g.op('Transpose', [v.name], `${v.name}_nhwc`, { perm: [0, 2, 3, 1] }) : v.name;
}

/** Explicit pads [top, left, bottom, right] of TensorFlow's SAME padding (the extra pixel goes at the end). */
function samePads(inHW: [number, number], kernel: [number, number], strides: [number, number], dilation: [number, number]): number[] {
  const begin: number[] = [];
  const end: number[] = [];
  for (let i = 0; i < 2; i++) {
    const out = Math.ceil(inHW[i] / strides[i]);
    const total = Math.max((out - 1) * strides[i] + (kernel[i] - 1) * dilation[i] + 1 - inHW[i], 0);
    begin.push(Math.floor(total / 2));
    end.push(total - Math.floor(total / 2));
  }
  return [...begin, ...end];
}

function spatialAttrs(ctx: Ctx, kernel: [number, number]) {
  const strides = pair(ctx.config.strides, 1);
  const dilations = pair(ctx.config.dilationRate, 1);
  const padding = ctx.config.padding as string;
  if (padding !== 'valid' && padding !== 'same') throw new UnsupportedLayerError(ctx.layer.name, ctx.layer.getClassName(), `padding "${padding}"`);
  if (ctx.config.dataFormat && ctx.config.dataFormat !== 'channelsLast')
    throw new UnsupportedLayerError(ctx.layer.name, ctx.layer.getClassName(), 'only channels_last');
  const [h, w] = ctx.inputs[0].shape;
  if (h < 0 || w < 0) throw new UnsupportedLayerError(ctx.layer.name, ctx.layer.getClassName(), 'needs a fixed input size');
  const pads = padding === 'same' ? samePads([h, w], kernel, strides, dilations) : [0, 0, 0, 0];
  return { strides, dilations, pads, kernel_shape: kernel };
}

/** Keras activations → ONNX; `out` names the result. */
function activation(g: GraphBuilder, x: string, name: string | undefined, layerName: string, rank: number, out: string): string {
  switch (name ?? 'linear') {
    case 'linear':
      return x;
    case 'relu':
      return g.op('Relu', [x], out);
    case 'relu6':
      return clip(g, x, 0, 6, out);
    case 'sigmoid':
      return g.op('Sigmoid', [x], out);
    case 'tanh':
      return g.op('Tanh', [x], out);
    case 'softmax':
      // Keras softmax is over the last (channel) axis: axis 1 of an NCHW tensor.
      return g.op('Softmax', [x], out, { axis: rank === 4 ? 1 : -1 });
    case 'elu':
      return g.op('Elu', [x], out);
    case 'selu':
      return g.op('Selu', [x], out);
    case 'softplus':
      return g.op('Softplus', [x], out);
    case 'softsign':
      return g.op('Softsign', [x], out);
    case 'hardSigmoid':
    case 'hard_sigmoid':
      // tfjs and Keras: clip(0.2·x + 0.5, 0, 1), ONNX HardSigmoid's defaults.
      return g.op('HardSigmoid', [x], out, { alpha: { float: 0.2 }, beta: { float: 0.5 } });
    case 'swish':
      return g.op('Mul', [x, g.op('Sigmoid', [x], `${out}_sigmoid`)], out);
    default:
      throw new UnsupportedLayerError(layerName, `activation ${name}`);
  }
}

function clip(g: GraphBuilder, x: string, min: number, max: number, out: string): string {
  const lo = g.addInitializer(`${out}_min`, [], Float32Array.of(min));
  const hi = g.addInitializer(`${out}_max`, [], Float32Array.of(max));
  return g.op('Clip', [x, lo.name, hi.name], out);
}

function conv(ctx: Ctx, depthwise: boolean): string {
  const { g, layer, config } = ctx;
  const w = weightsByName(layer);
  const kernel = w.get(depthwise ? 'depthwise_kernel' : 'kernel');
  if (!kernel) throw new UnsupportedLayerError(layer.name, layer.getClassName(), 'no kernel weights');
  const [kh, kw, cin, last] = kernel.shape as number[];
  const k = read(kernel);
  // tfjs kernels are [kh, kw, in, out] (depthwise: [kh, kw, in, multiplier]); ONNX wants
  // [out, in/group, kh, kw]. A depthwise output channel is c·multiplier + m, which is
  // the order of ONNX's grouped convolution with group = in.
  const cout = depthwise ? cin * last : last;
  const perOut = depthwise ? 1 : cin;
  const wData = new Float32Array(cout * perOut * kh * kw);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < last; o++) {
          const src = ((y * kw + x) * cin + i) * last + o;
          const oc = depthwise ? i * last + o : o;
          const ic = depthwise ? 0 : i;
          wData[((oc * perOut + ic) * kh + y) * kw + x] = k[src];
        }
  const weight = g.addInitializer(`${layer.name}/W`, [cout, perOut, kh, kw], wData);
  const biasTensor = w.get('bias');
  const bias = g.addInitializer(`${layer.name}/B`, [cout], biasTensor ? Float32Array.from(read(biasTensor)) : new Float32Array(cout));
  const attrs = spatialAttrs(ctx, [kh, kw]);
  const y = g.op('Conv', [ctx.inputs[0].name, weight.name, bias.name], layer.name, { ...attrs, group: depthwise ? cin : 1 });
  const act = (config.activation as string | undefined) ?? 'linear';
  if (act === 'linear' && layer.outboundNodes.length === 1) ctx.foldable.set(layer.name, { weight, bias, out: y });
  return activation(g, y, act, layer.name, 4, `${layer.name}_act`);
}

function batchNorm(ctx: Ctx): string {
  const { g, layer, config } = ctx;
  const axis = config.axis as number | number[];
  const rank = ctx.inputs[0].shape.length + 1;
  if (!(axis === -1 || axis === rank - 1 || (Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === rank - 1))))
    throw new UnsupportedLayerError(layer.name, 'BatchNormalization', 'only the channel (last) axis');
  const w = weightsByName(layer);
  const mean = read(w.get('moving_mean')!);
  const variance = read(w.get('moving_variance')!);
  const n = mean.length;
  const gamma = w.has('gamma') ? read(w.get('gamma')!) : new Float32Array(n).fill(1);
  const beta = w.has('beta') ? read(w.get('beta')!) : new Float32Array(n);
  const eps = (config.epsilon as number | undefined) ?? 1e-3;
  const scale = Float32Array.from(gamma, (v, i) => v / Math.sqrt(variance[i] + eps));
  const shift = Float32Array.from(beta, (v, i) => v - mean[i] * scale[i]);
  const source = ctx.layer.inboundNodes[0].inboundLayers[0]?.name;
  const fold = source ? ctx.foldable.get(source) : undefined;
  if (fold && fold.out === ctx.inputs[0].name) {
    // Folded into the convolution (valid: nothing else reads the conv's raw output,
    // and it has no activation): W' = W·s per output channel, b' = b·s + (β − μ·s).
    const W = fold.weight.data as Float32Array;
    const per = W.length / n;
    for (let o = 0; o < n; o++) for (let j = 0; j < per; j++) W[o * per + j] *= scale[o];
    const B = fold.bias.data as Float32Array;
    for (let o = 0; o < n; o++) B[o] = B[o] * scale[o] + shift[o];
    ctx.foldable.delete(source);
    return fold.out;
  }
  // Elsewhere as a per-channel affine map (what inference-mode batch norm is).
  const dims = rank === 4 ? [n, 1, 1] : [n];
  const s = g.addInitializer(`${layer.name}/scale`, dims, scale);
  const b = g.addInitializer(`${layer.name}/shift`, dims, shift);
  return g.op('Add', [g.op('Mul', [ctx.inputs[0].name, s.name], `${layer.name}_mul`), b.name], layer.name);
}

function dense(ctx: Ctx): string {
  const { g, layer, config } = ctx;
  if (ctx.inputs[0].shape.length !== 1) throw new UnsupportedLayerError(layer.name, 'Dense', 'only on flat (rank-2) inputs');
  const w = weightsByName(layer);
  const kernel = w.get('kernel')!;
  const [fin, fout] = kernel.shape as number[];
  const k = g.addInitializer(`${layer.name}/W`, [fin, fout], Float32Array.from(read(kernel)));
  const b = g.addInitializer(`${layer.name}/B`, [fout], w.has('bias') ? Float32Array.from(read(w.get('bias')!)) : new Float32Array(fout));
  const y = g.op('Gemm', [ctx.inputs[0].name, k.name, b.name], `${layer.name}_linear`);
  const act = (config.activation as string | undefined) ?? 'linear';
  return act === 'linear' ? g.op('Identity', [y], layer.name) : activation(g, y, act, layer.name, 2, layer.name);
}

function relu(ctx: Ctx): string {
  const { g, layer, config } = ctx;
  const max = config.maxValue as number | null | undefined;
  const slope = (config.negativeSlope as number | undefined) ?? 0;
  const threshold = (config.threshold as number | undefined) ?? 0;
  const x = ctx.inputs[0].name;
  if (threshold !== 0) throw new UnsupportedLayerError(layer.name, 'ReLU', 'threshold ≠ 0');
  if (slope === 0) return max == null ? g.op('Relu', [x], layer.name) : clip(g, x, 0, max, layer.name);
  if (max == null) return g.op('LeakyRelu', [x], layer.name, { alpha: { float: slope } });
  throw new UnsupportedLayerError(layer.name, 'ReLU', 'negative slope with a max value');
}

function pool(ctx: Ctx, op: 'AveragePool' | 'MaxPool'): string {
  const kernel = pair(ctx.config.poolSize, 2);
  const strides = pair(ctx.config.strides ?? ctx.config.poolSize, 2);
  const attrs = spatialAttrs({ ...ctx, config: { ...ctx.config, strides, dilationRate: 1 } }, kernel);
  // TensorFlow's average pooling leaves padded cells out of the mean: count_include_pad = 0.
  return ctx.g.op(op, [ctx.inputs[0].name], ctx.layer.name, { kernel_shape: attrs.kernel_shape, strides: attrs.strides, pads: attrs.pads });
}

function globalPool(ctx: Ctx, op: 'GlobalAveragePool' | 'GlobalMaxPool'): string {
  const pooled = ctx.g.op(op, [ctx.inputs[0].name], `${ctx.layer.name}_pool`);
  if (ctx.config.keepDims === true) return ctx.g.op('Identity', [pooled], ctx.layer.name);
  return ctx.g.op('Flatten', [pooled], ctx.layer.name, { axis: 1 });
}

function zeroPadding(ctx: Ctx): string {
  const p = ctx.config.padding;
  let t: number, b: number, l: number, r: number;
  if (typeof p === 'number') [t, b, l, r] = [p, p, p, p];
  else if (Array.isArray(p) && Array.isArray(p[0])) [[t, b], [l, r]] = p as [[number, number], [number, number]];
  else if (Array.isArray(p)) [t, b, l, r] = [p[0], p[0], p[1], p[1]];
  else throw new UnsupportedLayerError(ctx.layer.name, 'ZeroPadding2D', 'unreadable padding');
  const pads = ctx.g.addInitializer(`${ctx.layer.name}/pads`, [8], { int64: [0, 0, t, l, 0, 0, b, r] });
  return ctx.g.op('Pad', [ctx.inputs[0].name, pads.name], ctx.layer.name, { mode: 'constant' });
}

function reshape(ctx: Ctx, target: number[]): string {
  const flat = toNhwc(ctx.g, ctx.inputs[0]);
  const shape = ctx.g.addInitializer(`${ctx.layer.name}/shape`, [target.length + 1], { int64: [-1, ...target] });
  const y = ctx.g.op('Reshape', [flat, shape.name], target.length === 3 ? `${ctx.layer.name}_nhwc` : ctx.layer.name);
  return target.length === 3 ? ctx.g.op('Transpose', [y], ctx.layer.name, { perm: [0, 3, 1, 2] }) : y;
}

function merge(ctx: Ctx, op: 'Sum' | 'Mul' | 'Mean' | 'Max' | 'Min'): string {
  if (op === 'Mul')
    return ctx.inputs
      .slice(1)
      .reduce((acc, v, i) => ctx.g.op('Mul', [acc, v.name], i === ctx.inputs.length - 2 ? ctx.layer.name : `${ctx.layer.name}_${i}`), ctx.inputs[0].name);
  return ctx.g.op(
    op,
    ctx.inputs.map((v) => v.name),
    ctx.layer.name,
  );
}

function concatenate(ctx: Ctx): string {
  const rank = ctx.inputs[0].shape.length + 1;
  let axis = (ctx.config.axis as number | undefined) ?? -1;
  if (axis < 0) axis += rank;
  return ctx.g.op(
    'Concat',
    ctx.inputs.map((v) => v.name),
    ctx.layer.name,
    { axis: rank === 4 ? NCHW_AXIS[axis] : axis },
  );
}

function softmaxLayer(ctx: Ctx): string {
  const rank = ctx.inputs[0].shape.length + 1;
  let axis = (ctx.config.axis as number | undefined) ?? -1;
  if (axis < 0) axis += rank;
  return ctx.g.op('Softmax', [ctx.inputs[0].name], ctx.layer.name, { axis: rank === 4 ? NCHW_AXIS[axis] : axis });
}

const identity = (ctx: Ctx) => ctx.g.op('Identity', [ctx.inputs[0].name], ctx.layer.name);

/** Layer class → ONNX nodes; returns the name of the layer's output value. */
const HANDLERS: Record<string, (ctx: Ctx) => string> = {
  Conv2D: (ctx) => conv(ctx, false),
  DepthwiseConv2D: (ctx) => conv(ctx, true),
  BatchNormalization: batchNorm,
  Dense: dense,
  ReLU: relu,
  LeakyReLU: (ctx) => ctx.g.op('LeakyRelu', [ctx.inputs[0].name], ctx.layer.name, { alpha: { float: (ctx.config.alpha as number | undefined) ?? 0.3 } }),
  Activation: (ctx) => {
    const y = activation(ctx.g, ctx.inputs[0].name, ctx.config.activation as string, ctx.layer.name, ctx.inputs[0].shape.length + 1, ctx.layer.name);
    return y === ctx.inputs[0].name ? identity(ctx) : y;
  },
  Softmax: softmaxLayer,
  Add: (ctx) => merge(ctx, 'Sum'),
  Multiply: (ctx) => merge(ctx, 'Mul'),
  Average: (ctx) => merge(ctx, 'Mean'),
  Maximum: (ctx) => merge(ctx, 'Max'),
  Minimum: (ctx) => merge(ctx, 'Min'),
  Concatenate: concatenate,
  ZeroPadding2D: zeroPadding,
  AveragePooling2D: (ctx) => pool(ctx, 'AveragePool'),
  MaxPooling2D: (ctx) => pool(ctx, 'MaxPool'),
  GlobalAveragePooling2D: (ctx) => globalPool(ctx, 'GlobalAveragePool'),
  GlobalMaxPooling2D: (ctx) => globalPool(ctx, 'GlobalMaxPool'),
  Flatten: (ctx) => (ctx.inputs[0].shape.length === 1 ? identity(ctx) : ctx.g.op('Flatten', [toNhwc(ctx.g, ctx.inputs[0])], ctx.layer.name, { axis: 1 })),
  Reshape: (ctx) => reshape(ctx, ctx.config.targetShape as number[]),
  // Inference mode: dropout and noise layers pass their input through.
  Dropout: identity,
  SpatialDropout2D: identity,
  GaussianNoise: identity,
  GaussianDropout: identity,
  AlphaDropout: identity,
};

/** Names of the layers the outputs depend on, in the model's (topological) order. */
function layersNeeded(model: LayersModel, outputs: string[]): Layer[] {
  const byName = new Map(model.layers.map((l) => [l.name, l]));
  const needed = new Set<string>();
  const stack = [...outputs];
  while (stack.length) {
    const name = stack.pop()!;
    if (needed.has(name)) continue;
    const layer = byName.get(name);
    if (!layer) throw new UnsupportedLayerError(name, 'missing', 'the model has no such layer');
    needed.add(name);
    stack.push(...(layer.inboundNodes[0]?.inboundLayers.map((l) => l.name) ?? []));
  }
  return model.layers.filter((l) => needed.has(l.name));
}

function addInput(g: GraphBuilder, model: LayersModel, opts: Pick<ExportOnnxOptions, 'inputName' | 'normalization'>): Value {
  if (model.inputs.length !== 1) throw new UnsupportedLayerError(model.name, 'Model', `${model.inputs.length} inputs; one is supported`);
  const shape = featureShape(model.inputs[0]);
  if (shape.some((d) => d < 0)) throw new UnsupportedLayerError(model.inputLayers[0].name, 'InputLayer', 'needs a fixed input shape');
  const image = shape.length === 3;
  const name = opts.inputName ?? (image ? 'image' : 'features');
  g.fresh(name);
  g.inputs.push({ name, shape: ['N', ...shape] });
  let x = normalize(g, name, opts.normalization);
  if (image) x = g.op('Transpose', [x], 'input_nchw', { perm: [0, 3, 1, 2] });
  else if (shape.length !== 1) throw new UnsupportedLayerError(model.inputLayers[0].name, 'InputLayer', `rank-${shape.length + 1} input`);
  return { name: x, shape };
}

function normalize(g: GraphBuilder, x: string, norm: { scale: number; offset: number } | undefined): string {
  let y = x;
  if (norm && norm.scale !== 1) y = g.op('Mul', [y, g.addInitializer('input_scale', [], Float32Array.of(norm.scale)).name], 'input_scaled');
  if (norm && norm.offset !== 0) y = g.op('Add', [y, g.addInitializer('input_offset', [], Float32Array.of(norm.offset)).name], 'input_shifted');
  return y;
}

/**
 * A new graph input `name`, float32 NHWC `[N, ...source]` with values 0–255, brought to
 * the front's `target` shape the way the platform's embedders bring images to a base
 * (embedder.ts, onnx/embedder.ts): grey tiled to RGB, normalised, then resized
 * bilinearly with aligned corners (tf.image.resizeBilinear(x, size, true); ONNX
 * Resize, mode linear, coordinate_transformation_mode align_corners). Normalising
 * before resizing gives the same values: bilinear weights sum to 1, so the affine
 * normalisation commutes with them. Returns the image in `layout` (NCHW feeds the
 * convolutions, NHWC is what a pixel model flattens).
 */
function imageInput(
  g: GraphBuilder,
  name: string,
  source: number[],
  target: number[],
  norm: { scale: number; offset: number },
  layout: 'nchw' | 'nhwc',
): string {
  g.fresh(name);
  g.inputs.push({ name, shape: ['N', ...source] });
  let x = name;
  if (source[2] !== target[2]) {
    if (source[2] !== 1 || target[2] !== 3)
      throw new UnsupportedLayerError(name, 'input', `cannot feed ${source[2]}-channel images to a ${target[2]}-channel input`);
    x = g.op('Tile', [x, g.addInitializer('input_repeats', [4], { int64: [1, 1, 1, 3] }).name], 'input_rgb');
  }
  x = normalize(g, x, norm);
  const resize = source[0] !== target[0] || source[1] !== target[1];
  if (!resize && layout === 'nhwc') return x;
  x = g.op('Transpose', [x], 'input_nchw', { perm: [0, 3, 1, 2] });
  if (resize) {
    const int64 = (base: string, values: number[]) => g.addInitializer(base, [values.length], { int64: values }).name;
    const batchAndChannels = g.op('Slice', [g.op('Shape', [x], 'input_shape'), int64('input_nc_start', [0]), int64('input_nc_end', [2])], 'input_nc');
    const sizes = g.op('Concat', [batchAndChannels, int64('input_hw', [target[0], target[1]])], 'input_sizes', { axis: 0 });
    x = g.op('Resize', [x, '', '', sizes], 'input_resized', { mode: 'linear', coordinate_transformation_mode: 'align_corners' });
  }
  return layout === 'nhwc' ? g.op('Transpose', [x], 'input_nhwc', { perm: [0, 2, 3, 1] }) : x;
}

/** A value as a flat [N, size] embedding, globally average-pooled first when asked. */
function flatValue(g: GraphBuilder, v: Value, pooling: 'none' | 'avg' | undefined, name: string): Value {
  let x = v;
  if (pooling === 'avg' && v.shape.length === 3) {
    x = { name: g.op('Flatten', [g.op('GlobalAveragePool', [v.name], `${name}_pool`)], `${name}_pooled`, { axis: 1 }), shape: [v.shape[2]] };
  }
  return x.shape.length === 1 ? x : { name: g.op('Flatten', [toNhwc(g, x)], `${name}_flat`, { axis: 1 }), shape: [prod(x.shape)] };
}

function addOutput(g: GraphBuilder, out: OnnxOutput, v: Value): void {
  const flat = flatValue(g, v, out.pooling, out.name);
  g.named('Identity', [flat.name], out.name);
  g.outputs.push({ name: out.name, shape: ['N', flat.shape[0]] });
}

/** Adds `model`'s layers up to `outputLayers`; its input is `input` when given (chaining), else a new graph input. */
function addModel(
  g: GraphBuilder,
  model: LayersModel,
  outputLayers: Set<string>,
  input: Value | undefined,
  opts: Pick<ExportOnnxOptions, 'inputName' | 'normalization'>,
): Map<string, Value> {
  const values = new Map<string, Value>();
  const foldable: Ctx['foldable'] = new Map();
  for (const layer of layersNeeded(model, [...outputLayers])) {
    const className = layer.getClassName();
    if (className === 'InputLayer') {
      const expected = featureShape(model.inputs[0]);
      if (input && prod(input.shape) !== prod(expected))
        throw new UnsupportedLayerError(layer.name, className, `fed ${prod(input.shape)} values, expects ${prod(expected)}`);
      values.set(layer.name, input ?? addInput(g, model, opts));
      continue;
    }
    const handler = HANDLERS[className];
    if (!handler) throw new UnsupportedLayerError(layer.name, className);
    if (layer.inboundNodes.length !== 1) throw new UnsupportedLayerError(layer.name, className, 'layers called more than once are not supported');
    const node = layer.inboundNodes[0];
    const inputs = node.inboundLayers.map((l, i) => {
      const v = values.get(l.name);
      if (!v || node.tensorIndices[i] !== 0) throw new UnsupportedLayerError(layer.name, className, `input from ${l.name} cannot be resolved`);
      return v;
    });
    const name = handler({ g, layer, config: layer.getConfig(), inputs, foldable });
    // An output's value is read as it is: batch norm must not fold into it.
    if (outputLayers.has(layer.name)) foldable.delete(layer.name);
    values.set(layer.name, { name, shape: featureShape(layer.output as SymbolicTensor) });
  }
  return values;
}

/** Reserves the output names first, so no helper value takes one of them. */
function reserveOutputs(g: GraphBuilder, outputs: Array<{ name: string; layer: string }>): void {
  for (const out of outputs)
    if (g.fresh(out.name) !== out.name) throw new UnsupportedLayerError(out.layer, 'output', `output name "${out.name}" is used twice`);
}

/**
 * The ONNX graph of `model` from its input to `opts.outputs`: float32 input
 * (NHWC `[N, H, W, C]` for images, `[N, F]` for vectors), one `[N, size]` output each.
 * @throws UnsupportedLayerError naming the first layer that has no ONNX mapping.
 */
export function exportLayersModelToOnnx(model: LayersModel, opts: ExportOnnxOptions): Uint8Array {
  if (opts.outputs.length === 0) throw new UnsupportedLayerError(model.name, 'Model', 'no outputs requested');
  const g = new GraphBuilder();
  reserveOutputs(g, opts.outputs);
  const values = addModel(g, model, new Set(opts.outputs.map((o) => o.layer)), undefined, opts);
  for (const out of opts.outputs) addOutput(g, out, values.get(out.layer)!);
  return g.encode({ graphName: opts.graphName ?? model.name, producer: 'transfer-learning-platform', metadata: opts.metadata });
}

export interface ChainOutput {
  /** Name of the graph output (a task name). */
  name: string;
  /** Layer of the heads model. */
  layer: string;
  /** Applied last, per unit: y·scale + shift (a regression head's std and mean). */
  scale?: number[];
  shift?: number[];
}

export interface ExportChainOptions {
  /** The frozen part: a base cut at `cut`, or pixels scaled and flattened (`pixels`), or nothing (vector models). */
  front?:
    | {
        kind: 'base';
        model: LayersModel;
        cut: Omit<OnnxOutput, 'name'> & { concat?: Array<Omit<OnnxOutput, 'name'>> };
        normalization: { scale: number; offset: number };
      }
    | { kind: 'pixels'; shape: number[]; scale: number }
    /** Vector models: (x − mean) / std per feature, NaN (a missing value) as 0, the train mean (shared/ml/features.ts). */
    | { kind: 'features'; size: number; mean: number[]; std: number[] };
  heads: LayersModel;
  outputs: ChainOutput[];
  /**
   * `[H, W, C]` of the images the file takes, when a front is given: the served model's
   * input shape, which can differ from the front's (a pixel model's images are resized
   * to its 32×32 input, a model extended onto another base keeps its own input size).
   * The graph then resizes as the platform does. @default the front's own shape
   */
  inputShape?: number[];
  /** @default 'image' with a front, 'features' without */
  inputName?: string;
  metadata?: Record<string, string>;
  graphName?: string;
}

/**
 * One self-contained graph: the frozen front (base up to its cut, or scaled pixels)
 * feeding the heads model, one output per head.
 * @throws UnsupportedLayerError naming the first layer without an ONNX mapping.
 */
export function exportChainToOnnx(opts: ExportChainOptions): Uint8Array {
  const g = new GraphBuilder();
  reserveOutputs(g, opts.outputs);
  let input: Value | undefined;
  const front = opts.front;
  if (front?.kind === 'base') {
    if (front.model.inputs.length !== 1) throw new UnsupportedLayerError(front.model.name, 'Model', `${front.model.inputs.length} inputs; one is supported`);
    const target = featureShape(front.model.inputs[0]);
    if (target.length !== 3 || target.some((d) => d < 0))
      throw new UnsupportedLayerError(front.model.inputLayers[0].name, 'InputLayer', 'needs a fixed [H, W, C] image input');
    const source = opts.inputShape ?? target;
    const image = imageInput(g, opts.inputName ?? 'image', source, target, front.normalization, 'nchw');
    const parts = cutParts(front.cut);
    const values = addModel(g, front.model, new Set(parts.map((p) => p.layer)), { name: image, shape: target }, {});
    const flat = parts.map((p, i) => flatValue(g, values.get(p.layer)!, p.pooling, parts.length === 1 ? 'embedding' : `embedding_${i}`));
    // A concat cut: the parts of this one pass side by side, in the order the heads were trained on.
    input =
      flat.length === 1
        ? flat[0]
        : {
            name: g.op(
              'Concat',
              flat.map((f) => f.name),
              'embedding',
              { axis: 1 },
            ),
            shape: [flat.reduce((a, f) => a + f.shape[0], 0)],
          };
  } else if (front?.kind === 'pixels') {
    const image = imageInput(g, opts.inputName ?? 'image', opts.inputShape ?? front.shape, front.shape, { scale: front.scale, offset: 0 }, 'nhwc');
    input = { name: g.op('Flatten', [image], 'embedding', { axis: 1 }), shape: [prod(front.shape)] };
  } else if (front?.kind === 'features') {
    const name = opts.inputName ?? 'features';
    g.fresh(name);
    g.inputs.push({ name, shape: ['N', front.size] });
    const scale = g.addInitializer(
      'features/scale',
      [front.size],
      Float32Array.from(front.std, (s) => 1 / s),
    );
    const shift = g.addInitializer(
      'features/shift',
      [front.size],
      Float32Array.from(front.mean, (m, j) => -m / front.std[j]),
    );
    const standardised = g.op('Add', [g.op('Mul', [name, scale.name], 'features_scaled'), shift.name], 'features_standardised');
    const zero = g.addInitializer('features/missing', [], Float32Array.of(0));
    input = { name: g.op('Where', [g.op('IsNaN', [name], 'features_missing'), zero.name, standardised], 'embedding'), shape: [front.size] };
  }
  const values = addModel(g, opts.heads, new Set(opts.outputs.map((o) => o.layer)), input, { inputName: opts.inputName ?? 'features' });
  for (const out of opts.outputs) {
    let v = flatValue(g, values.get(out.layer)!, 'none', out.name);
    if (out.scale || out.shift) {
      const n = v.shape[0];
      const sc = g.addInitializer(`${out.name}/scale`, [n], Float32Array.from(out.scale ?? new Array<number>(n).fill(1)));
      const sh = g.addInitializer(`${out.name}/shift`, [n], Float32Array.from(out.shift ?? new Array<number>(n).fill(0)));
      v = { name: g.op('Add', [g.op('Mul', [v.name, sc.name], `${out.name}_scaled`), sh.name], `${out.name}_real`), shape: v.shape };
    }
    g.named('Identity', [v.name], out.name);
    g.outputs.push({ name: out.name, shape: ['N', v.shape[0]] });
  }
  return g.encode({ graphName: opts.graphName ?? opts.heads.name, producer: 'transfer-learning-platform', metadata: opts.metadata });
}
