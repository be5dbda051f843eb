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
import { cutParts, describeCut, type EmbeddingCut } from './cuts.js';

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
   * Every cut one forward pass should give (the first is `embedding`'s): the onnx engine
   * and a `model:` base (one pass of its parent, then its layers) return an embedder with
   * `embedCuts`; a pretrained base on the tfjs engine ignores it (one cut per embedder).
   */
  cuts?: EmbeddingCut[];
}

/** An embedder that gives several cuts from one forward pass (onnx/embedder.ts, trained-model-embedder.ts). */
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
    const source = opts.sourceShape ?? this.inputShape;
    const per = prod(source);
    if (pixels.length !== count * per) throw new EmbedderError(`expected ${count}×${source.join('×')} = ${count * per} pixel values, got ${pixels.length}`);
    const batch = Math.max(1, opts.batchSize ?? this.defaultBatch);
    const out = new Float32Array(count * this.size);
    const { scale, offset } = this.normalization();
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      const y = this.tf.tidy(() => this.forward(toInput(this.tf, pixels.subarray(start * per, (start + n) * per), n, source, this.inputShape, scale, offset)));
      try {
        out.set(await y.data(), start * this.size);
      } finally {
        y.dispose();
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

/** A pretrained base cut at its embedding layer, or at several layers whose outputs are laid side by side (a concat cut). */
class LayersEmbedder extends BatchedEmbedder {
  readonly size: number;
  private readonly sizes: number[];
  protected readonly defaultBatch = 8;
  constructor(
    tf: Tf,
    private readonly cut: LayersModel,
    private readonly full: LayersModel,
    readonly inputShape: ImageShape,
    private readonly norm: { scale: number; offset: number },
  ) {
    super(tf);
    this.sizes = cut.outputs.map((o) => prod(o.shape.slice(1) as number[]));
    this.size = this.sizes.reduce((a, b) => a + b, 0);
  }
  protected forward(x: Tensor4D): Tensor {
    const y = this.cut.predict(x);
    const n = x.shape[0];
    if (!Array.isArray(y)) return y.reshape([n, this.size]);
    return this.tf.concat(
      y.map((t, i) => t.reshape([n, this.sizes[i]])),
      1,
    );
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
  // One output per part of the cut: a concat cut's parts all come from this one model's pass.
  const outputs: SymbolicTensor[] = [];
  for (const [i, part] of cutParts(want).entries()) {
    let layer;
    try {
      layer = full.getLayer(part.layer);
    } catch {
      full.dispose();
      throw new EmbedderError(`base ${base.name} has no layer "${part.layer}"${want.concat ? ` (in the cut ${describeCut(want)})` : ''}`);
    }
    let output = layer.output as SymbolicTensor;
    if (part.pooling === 'avg' && output.shape.length === 4) {
      output = tf.layers.globalAveragePooling2d({ name: `${part.layer}_avg_pool${i ? `_${i}` : ''}` }).apply(output) as SymbolicTensor;
    }
    outputs.push(output);
  }
  const cut = tf.model({ inputs: full.inputs, outputs: outputs.length === 1 ? outputs[0] : outputs });
  const embedder = new LayersEmbedder(tf, cut, full, d.inputShape, d.normalization);
  if (!opts.embedding && embedder.size !== d.embedding.size) {
    embedder.dispose();
    throw new EmbedderError(`base ${base.name}: layer ${d.embedding.layer} gives ${embedder.size} values, the descriptor says ${d.embedding.size}`);
  }
  return embedder;
}
