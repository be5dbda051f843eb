/**
 * The frozen part of a model behind one small interface: uint8 RGB images in,
 * float32 embeddings out. Training, the embedding cache and predict all go through
 * it, so a faster engine (e.g. onnxruntime) can replace the tfjs forward pass here
 * without touching the rest.
 */
import type { LayersModel, SymbolicTensor, Tensor, Tensor4D } from '@tensorflow/tfjs';
import type { ObjectStore } from '../ports/object-store.js';
import { loadTf, type Tf } from '../tf/loader.js';
import type { ResolvedBase } from './base-models.js';
import { objectStoreIO } from './model-io.js';
import { loadModelEmbedder } from './trained-model-embedder.js';
import { UserError } from '../errors.js';
import { UnsupportedLayerError } from './onnx/export.js';
import { loadOnnxEmbedder } from './onnx/embedder.js';
import { frozenEngine, logModelFallback, type EngineName } from './onnx/runtime.js';
import { toFloatPixels } from './pixels.js';
import { assembleCuts, cutParts, describeCut, partsOf, type EmbeddingCut } from './cuts.js';

export type ImageShape = [number, number, number];

export interface EmbedOptions {
  /**
   * Images per forward pass. @default 32 (8 for pretrained bases, which need the memory;
   * the onnx engine runs at most 4 per pass, see MAX_RUN in onnx/embedder.ts)
   */
  batchSize?: number;
  /** Called after each batch with images done so far. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Shape of the given images when it differs from `inputShape`: they are resized
   * (bilinear) and grey images repeated to three channels first.
   * @default the embedder's inputShape
   */
  sourceShape?: ImageShape;
}

export interface Embedder {
  /** Which engine runs the forward pass (onnx: shared/ml/onnx/). Absent means tfjs. */
  readonly engine?: EngineName;
  readonly inputShape: ImageShape;
  readonly size: number;
  /**
   * @param pixels count×h×w×c uint8 RGB, HWC
   * @returns count×size embeddings
   */
  embed(pixels: Uint8Array, count: number, opts?: EmbedOptions): Promise<Float32Array>;
  dispose(): void;
}

export class EmbedderError extends UserError {
  override name = 'EmbedderError';
  constructor(message: string) {
    super('BASE_MODEL_ERROR', message);
  }
}

export interface LoadEmbedderOptions {
  /**
   * Cut a pretrained base somewhere other than its descriptor's embedding layer (used to
   * compare layers); a concat cut embeds its parts side by side, from one forward pass.
   */
  embedding?: EmbeddingCut;
  /**
   * Every cut one forward pass should give (the first is `embedding`'s): a pretrained
   * base (either engine) and a `model:` base (one pass of its parent, then its layers)
   * return an embedder with `embedCuts`.
   */
  cuts?: EmbeddingCut[];
}

/** An embedder that gives several cuts from one forward pass (LayersEmbedder here, onnx/embedder.ts, trained-model-embedder.ts). */
export interface MultiCutEmbedder extends Embedder {
  readonly sizes: number[];
  embedCuts(pixels: Uint8Array, count: number, opts?: EmbedOptions): Promise<Float32Array[]>;
}

export const isMultiCut = (e: Embedder): e is MultiCutEmbedder => typeof (e as Partial<MultiCutEmbedder>).embedCuts === 'function';

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Turns a batch of uint8 images into normalized float input of the target shape. */
function toInput(tf: Tf, pixels: Uint8Array, n: number, source: ImageShape, target: ImageShape, scale: number, offset: number): Tensor4D {
  return tf
    .tensor4d(toFloatPixels(pixels, n, source, target), [n, ...target])
    .mul(scale)
    .add<Tensor4D>(offset);
}

abstract class BatchedEmbedder implements Embedder {
  readonly engine = 'tfjs' as const;
  abstract readonly inputShape: ImageShape;
  abstract readonly size: number;
  protected abstract readonly defaultBatch: number;
  constructor(protected readonly tf: Tf) {}
  protected abstract forward(x: Tensor4D): Tensor;
  protected abstract normalization(): { scale: number; offset: number };

  async embed(pixels: Uint8Array, count: number, opts: EmbedOptions = {}): Promise<Float32Array> {
    return (await this.batches(pixels, count, opts, (x) => [this.forward(x)], [this.size]))[0];
  }

  /**
   * `forward` over the images in batches, each of its outputs (count×sizes[i] once
   * reshaped) copied into its own array.
   */
  protected async batches(pixels: Uint8Array, count: number, opts: EmbedOptions, forward: (x: Tensor4D) => Tensor[], sizes: number[]): Promise<Float32Array[]> {
    const source = opts.sourceShape ?? this.inputShape;
    const per = prod(source);
    if (pixels.length !== count * per) throw new EmbedderError(`expected ${count}×${source.join('×')} = ${count * per} pixel values, got ${pixels.length}`);
    const batch = Math.max(1, opts.batchSize ?? this.defaultBatch);
    const out = sizes.map((s) => new Float32Array(count * s));
    const { scale, offset } = this.normalization();
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      const ys = this.tf.tidy(() => forward(toInput(this.tf, pixels.subarray(start * per, (start + n) * per), n, source, this.inputShape, scale, offset)));
      try {
        for (const [i, y] of ys.entries()) out[i].set(await y.data(), start * sizes[i]);
      } finally {
        this.tf.dispose(ys);
      }
      opts.onProgress?.(start + n, count);
      // On wasm, data() settles as a microtask, so without this the loop never lets
      // timers and I/O run: status writes would wait until the end, and a server
      // embedding a request would answer nobody else meanwhile.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return out;
  }
  abstract dispose(): void;
}

/**
 * A pretrained base cut at its embedding layer, or at several layers whose outputs are
 * laid side by side (a concat cut). Given several cuts, `embedCuts` returns every one of
 * them from one forward pass per batch (the representation search's candidates), each
 * distinct layer computed once, as the onnx engine does: before, the tfjs engine ran the
 * base once per candidate cut.
 */
class LayersEmbedder extends BatchedEmbedder implements MultiCutEmbedder {
  readonly size: number;
  /** Size of each cut's embedding, in cut order; `size` is the first. */
  readonly sizes: number[];
  protected readonly defaultBatch = 8;
  private readonly partSizes: number[];
  /** The first cut alone: a model with just its parts' outputs, so `embed` computes no other part. */
  private readonly first: LayersModel;
  constructor(
    tf: Tf,
    /** The base with one output per distinct part of the cuts. */
    private readonly parts: LayersModel,
    /** Per cut, the indices of its parts among `parts`' outputs. */
    private readonly plan: number[][],
    private readonly full: LayersModel,
    readonly inputShape: ImageShape,
    private readonly norm: { scale: number; offset: number },
  ) {
    super(tf);
    this.partSizes = parts.outputs.map((o) => prod(o.shape.slice(1) as number[]));
    this.sizes = plan.map((own) => own.reduce((a, p) => a + this.partSizes[p], 0));
    this.size = this.sizes[0];
    const outputs = plan[0].map((p) => parts.outputs[p]);
    this.first = plan[0].length === parts.outputs.length && plan[0].every((p, i) => p === i) ? parts : tf.model({ inputs: parts.inputs, outputs });
  }
  protected forward(x: Tensor4D): Tensor {
    const ys = this.predictParts(this.first, x);
    return ys.length === 1 ? ys[0] : this.tf.concat(ys, 1);
  }
  /** Each output of `model` as n×size rows. */
  private predictParts(model: LayersModel, x: Tensor4D): Tensor[] {
    const n = x.shape[0];
    const y = model.predict(x);
    return (Array.isArray(y) ? y : [y]).map((t) => t.reshape([n, -1]));
  }
  async embedCuts(pixels: Uint8Array, count: number, opts: EmbedOptions = {}): Promise<Float32Array[]> {
    const byPart = await this.batches(pixels, count, opts, (x) => this.predictParts(this.parts, x), this.partSizes);
    return assembleCuts(byPart, this.partSizes, this.plan, count);
  }
  protected normalization() {
    return this.norm;
  }
  dispose(): void {
    this.full.dispose();
  }
}

/** `base: "none"`: pixels scaled to [0, 1] and flattened. */
class PixelEmbedder extends BatchedEmbedder {
  readonly size: number;
  protected readonly defaultBatch = 256;
  constructor(
    tf: Tf,
    readonly inputShape: ImageShape,
  ) {
    super(tf);
    this.size = prod(inputShape);
  }
  protected forward(x: Tensor4D): Tensor {
    return x.reshape([x.shape[0], this.size]);
  }
  protected normalization() {
    return { scale: 1 / 255, offset: 0 };
  }
  dispose(): void {}
}

/**
 * Loads the frozen part of a base: the stored tfjs model cut at the descriptor's
 * embedding layer (globally average-pooled when the descriptor says `avg`), or a
 * pixel embedder for `none`. A pretrained base runs on ONNX Runtime when this
 * process's engine is onnx (shared/ml/onnx/runtime.ts) and the base exports; a
 * base with a layer the exporter lacks keeps tfjs, said once in the log.
 * @throws EmbedderError when the embedding layer is missing or its size differs from the descriptor.
 */
export async function loadEmbedder(store: ObjectStore, base: ResolvedBase, opts: LoadEmbedderOptions = {}): Promise<Embedder> {
  const { tf } = await loadTf();
  if (base.kind === 'none') return new PixelEmbedder(tf, base.inputShape);
  if (base.kind === 'model') return loadModelEmbedder(store, base, opts, loadEmbedder);
  if ((await frozenEngine()).engine === 'onnx') {
    const onnx = await loadOnnxPretrained(store, base, opts);
    if (onnx) return onnx;
  }
  return loadTfjsPretrained(store, base, opts);
}

async function loadOnnxPretrained(
  store: ObjectStore,
  base: Extract<ResolvedBase, { kind: 'pretrained' }>,
  opts: LoadEmbedderOptions,
): Promise<Embedder | undefined> {
  const d = base.descriptor;
  const want = opts.embedding ?? d.embedding;
  try {
    const embedder = await loadOnnxEmbedder(store, { name: base.name, descriptor: d }, opts.cuts?.length ? opts.cuts : [want]);
    if (!opts.embedding && embedder.size !== d.embedding.size) {
      throw new EmbedderError(`base ${base.name}: layer ${d.embedding.layer} gives ${embedder.size} values, the descriptor says ${d.embedding.size}`);
    }
    return embedder;
  } catch (err) {
    if (!(err instanceof UnsupportedLayerError)) throw err;
    // The missing layer is the base's own problem, reported by the tfjs path with its usual error.
    if (err.className === 'missing') return undefined;
    logModelFallback(base.name, err.message);
    return undefined;
  }
}

async function loadTfjsPretrained(store: ObjectStore, base: Extract<ResolvedBase, { kind: 'pretrained' }>, opts: LoadEmbedderOptions): Promise<Embedder> {
  const { tf } = await loadTf();
  const d = base.descriptor;
  const prefix = d.modelKey.replace(/\/model\.json$/, '');
  const full = await tf.loadLayersModel(objectStoreIO(store, prefix));
  const want: EmbeddingCut = opts.embedding ?? d.embedding;
  // Every cut asked for from one pass: one output per distinct part of them (a concat cut's parts too).
  const cuts = opts.cuts?.length ? opts.cuts : [want];
  const { parts, plan } = partsOf(cuts);
  const outputs: SymbolicTensor[] = [];
  for (const [i, part] of parts.entries()) {
    let layer;
    try {
      layer = full.getLayer(part.layer);
    } catch {
      full.dispose();
      const cut = cuts.find((c) => cutParts(c).some((p) => p.layer === part.layer))!;
      throw new EmbedderError(`base ${base.name} has no layer "${part.layer}"${cut.concat ? ` (in the cut ${describeCut(cut)})` : ''}`);
    }
    let output = layer.output as SymbolicTensor;
    if (part.pooling === 'avg' && output.shape.length === 4) {
      output = tf.layers.globalAveragePooling2d({ name: `${part.layer}_avg_pool${i ? `_${i}` : ''}` }).apply(output) as SymbolicTensor;
    }
    outputs.push(output);
  }
  const model = tf.model({ inputs: full.inputs, outputs: outputs.length === 1 ? outputs[0] : outputs });
  const embedder = new LayersEmbedder(tf, model, plan, full, d.inputShape, d.normalization);
  if (!opts.embedding && embedder.size !== d.embedding.size) {
    embedder.dispose();
    throw new EmbedderError(`base ${base.name}: layer ${d.embedding.layer} gives ${embedder.size} values, the descriptor says ${d.embedding.size}`);
  }
  return embedder;
}
