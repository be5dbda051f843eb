/**
 * The frozen part of a pretrained base run by ONNX Runtime (onnxruntime-node, CPU
 * execution provider), behind the same `Embedder` interface as the tfjs engine.
 *
 * The base's tfjs model is exported once (export.ts) and the graph written to the
 * store beside the base, at `base-models/<name>/onnx/<hash>.onnx`, where the hash
 * covers the model's files, the cuts, the normalisation and the exporter version:
 * the training job, the preprocess step (prototypes) and the predict function all
 * reuse the same file, and a changed base gets a new one. Sessions are cached per
 * process, one per (graph), so a cached embedder costs one session creation.
 *
 * One graph can have several outputs ("cuts"): `embedCuts` returns all of them
 * from one forward pass (comparing representations needs that). A concat cut is
 * its parts' outputs of that pass laid side by side per image (cuts.ts), so the
 * graph holds each distinct part once however many cuts share it.
 */
import { createHash } from 'node:crypto';
import type { InferenceSession } from 'onnxruntime-common';
import { NotFoundError, type ObjectStore } from '../../ports/object-store.js';
import type { BaseModelDescriptor } from '../../schemas/base-model.js';
import { loadTf } from '../../tf/loader.js';
import { UserError } from '../../errors.js';
import type { EmbedOptions, Embedder, ImageShape } from '../embedder.js';
import { assembleCuts, partsOf, type EmbeddingCut, type LayerCut } from '../cuts.js';
import { objectStoreIO } from '../model-io.js';
import { toFloatPixels } from '../pixels.js';
import { exportLayersModelToOnnx, type OnnxOutput } from './export.js';
import { engineThreads, frozenEngine, type Ort } from './runtime.js';

/** Bumped when the exporter's output changes for the same model, so stored graphs are rebuilt. */
export const EXPORTER_VERSION = 1;

export type Cut = EmbeddingCut;

export interface OnnxBase {
  name: string;
  descriptor: BaseModelDescriptor;
}

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
const cutName = (i: number) => `cut_${i}`;

/** Content hash of the base's model files and what is exported from them. */
async function graphKey(store: ObjectStore, base: OnnxBase, cuts: LayerCut[]): Promise<{ key: string; prefix: string }> {
  const prefix = base.descriptor.modelKey.replace(/\/model\.json$/, '');
  const modelJson = await store.get(base.descriptor.modelKey);
  const h = createHash('sha256').update(modelJson);
  const manifest = (JSON.parse(modelJson.toString('utf8')) as { weightsManifest?: Array<{ paths: string[] }> }).weightsManifest ?? [];
  for (const group of manifest) for (const p of group.paths) h.update(await store.get(`${prefix}/${p}`));
  h.update(JSON.stringify({ cuts: cuts.map((c) => [c.layer, c.pooling ?? 'none']), norm: base.descriptor.normalization, v: EXPORTER_VERSION }));
  return { key: `${prefix}/onnx/${h.digest('hex').slice(0, 32)}.onnx`, prefix };
}

/** The stored graph, exported from the tfjs model and written first when missing. */
async function storedGraph(store: ObjectStore, base: OnnxBase, cuts: LayerCut[]): Promise<{ key: string; bytes: Uint8Array }> {
  const { key, prefix } = await graphKey(store, base, cuts);
  try {
    return { key, bytes: await store.get(key) };
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  const { tf } = await loadTf();
  const model = await tf.loadLayersModel(objectStoreIO(store, prefix));
  try {
    const outputs: OnnxOutput[] = cuts.map((c, i) => ({ name: cutName(i), layer: c.layer, pooling: c.pooling }));
    const bytes = exportLayersModelToOnnx(model, {
      outputs,
      inputName: 'image',
      normalization: base.descriptor.normalization,
      graphName: base.name,
      metadata: { 'tl.base': base.name, 'tl.cuts': JSON.stringify(cuts) },
    });
    // Concurrent first uses export identical bytes; whichever lands first is kept.
    await store.putIfAbsent(key, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { contentType: 'application/octet-stream' });
    return { key, bytes };
  } finally {
    model.dispose();
  }
}

interface CachedSession {
  session: InferenceSession;
  sizes: number[];
}
const sessions = new Map<string, Promise<CachedSession>>();

async function createSession(ort: Ort, bytes: Uint8Array, inputShape: ImageShape, cuts: number): Promise<CachedSession> {
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ['cpu'],
    intraOpNumThreads: engineThreads(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Worker threads that spin while waiting burn the cores other work needs: measured
    // on this 2-core machine under load (load average ~10), MobileNetV2 at batch 8 ran at
    // 24 images/s with spinning and 49 without (2 threads), so spinning is off.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  // One pass on a blank image gives the output sizes (and warms the session up).
  const r = await session.run({ image: new ort.Tensor('float32', new Float32Array(prod(inputShape)), [1, ...inputShape]) });
  return { session, sizes: Array.from({ length: cuts }, (_, i) => r[cutName(i)].data.length) };
}

/** One session per stored graph and process. */
function sessionFor(ort: Ort, key: string, bytes: Uint8Array, inputShape: ImageShape, cuts: number): Promise<CachedSession> {
  let s = sessions.get(key);
  if (!s) {
    s = createSession(ort, bytes, inputShape, cuts);
    sessions.set(key, s);
    s.catch(() => sessions.delete(key));
  }
  return s;
}

/**
 * Images per `session.run`, whatever batch the caller asks for (its batch size is an
 * upper bound). Large runs are slower per image on CPU: the activations of a run of
 * 32 MobileNetV2 images (32×112×112×96 floats, 154 MB, in the first expanded block)
 * do not stay in the caches, and CPU time per image grows. Measured on this 2-core
 * machine under load (128 images per run size, two rounds), images/s at runs of
 * 1 / 2 / 4 / 8 / 16 / 32: 66 / 88 / 122 / 76 / 37 / 37 and 90 / 76 / 95 / 66 / 64 / 55,
 * CPU ms per image about 6 up to runs of 8, 7 to 11 at 32; issue 9's quieter
 * measurement put 8 (219) ahead of 1 (184) and 32 (193). Runs of 4 were best in both
 * rounds here and give away little against 8 on a quiet machine.
 */
export const MAX_RUN = 4;

/**
 * One-image input buffers no run is using, by length (at most `KEPT_INPUTS` of each: 2.4 MB
 * at 224×224). A fresh one per call was 600 KB of ArrayBuffer per one-image predict; the
 * serving process's full collections came from it and V8's heap sizing (see `shared/heap.ts`):
 * with the buffers reused and the heap's growing factor fixed, 15 of 15 runs of 1000 predicts
 * had 2–3 full collections, and 7 runs with the factor fixed alone 8–10. Each call takes its
 * own buffer, so concurrent calls never share one; calls of several images (the job's) are
 * few and large, and allocate theirs.
 */
const freeInputs = new Map<number, Float32Array[]>();
const KEPT_INPUTS = 4;
function takeInput(length: number): Float32Array {
  return freeInputs.get(length)?.pop() ?? new Float32Array(length);
}
function giveBackInput(input: Float32Array): void {
  const free = freeInputs.get(input.length) ?? [];
  if (free.length < KEPT_INPUTS) free.push(input);
  freeInputs.set(input.length, free);
}

export class OnnxEmbedder implements Embedder {
  readonly engine = 'onnx' as const;
  readonly inputShape: ImageShape;
  /** Size of each cut's embedding, in cut order; `size` is the first. */
  readonly sizes: number[];
  readonly size: number;
  constructor(
    private readonly ort: Ort,
    private readonly session: InferenceSession,
    inputShape: ImageShape,
    /** Size of each graph output (`cut_<i>`). */
    private readonly partSizes: number[],
    /** The stored graph's key. */
    readonly graphKey: string,
    /** Per cut, the graph outputs it lays side by side (one for a plain cut). */
    private readonly plan: number[][] = partSizes.map((_, i) => [i]),
  ) {
    this.inputShape = inputShape;
    this.sizes = plan.map((parts) => parts.reduce((a, p) => a + partSizes[p], 0));
    this.size = this.sizes[0];
  }

  async embed(pixels: Uint8Array, count: number, opts: EmbedOptions = {}): Promise<Float32Array> {
    return (await this.run(pixels, count, opts, [0]))[0];
  }

  /** Every cut's embeddings from one forward pass per batch, in cut order. */
  embedCuts(pixels: Uint8Array, count: number, opts: EmbedOptions = {}): Promise<Float32Array[]> {
    return this.run(
      pixels,
      count,
      opts,
      this.sizes.map((_, i) => i),
    );
  }

  /** The graph outputs `cuts` need, each fetched once, then each cut's parts side by side. */
  private async run(pixels: Uint8Array, count: number, opts: EmbedOptions, cuts: number[]): Promise<Float32Array[]> {
    const parts = [...new Set(cuts.flatMap((c) => this.plan[c]))];
    const byPart = await this.runParts(pixels, count, opts, parts);
    return assembleCuts(
      byPart,
      this.partSizes,
      cuts.map((c) => this.plan[c]),
      count,
    );
  }

  /** Rows of each graph output in `parts`, at that output's index (the others left empty). */
  private async runParts(pixels: Uint8Array, count: number, opts: EmbedOptions, parts: number[]): Promise<Float32Array[]> {
    const source = opts.sourceShape ?? this.inputShape;
    const per = prod(source);
    if (pixels.length !== count * per)
      throw new UserError('BASE_MODEL_ERROR', `expected ${count}×${source.join('×')} = ${count * per} pixel values, got ${pixels.length}`);
    const batch = Math.min(Math.max(1, opts.batchSize ?? MAX_RUN), MAX_RUN);
    const fetches = parts.map(cutName);
    const sizes = parts.map((p) => this.partSizes[p]);
    const out = sizes.map((s) => new Float32Array(count * s));
    // One input buffer for every batch of this call; a one-image call's comes from the pool
    // and goes back when its run is over (the graph normalises the 0–255 values).
    const length = Math.min(batch, count) * prod(this.inputShape);
    const input = count === 1 ? takeInput(length) : new Float32Array(length);
    try {
      for (let start = 0; start < count; start += batch) {
        const n = Math.min(batch, count - start);
        const x = toFloatPixels(pixels.subarray(start * per, (start + n) * per), n, source, this.inputShape, input);
        const feeds = { image: new this.ort.Tensor('float32', x, [n, ...this.inputShape]) };
        const result = await this.session.run(feeds, fetches);
        fetches.forEach((f, i) => out[i].set(result[f].data as Float32Array, start * sizes[i]));
        opts.onProgress?.(start + n, count);
      }
    } finally {
      if (count === 1) giveBackInput(input);
    }
    const byPart: Float32Array[] = [];
    parts.forEach((p, i) => (byPart[p] = out[i]));
    return byPart;
  }

  /** The session stays cached for the next embedder of the same graph; nothing to free per embedder. */
  dispose(): void {}
}

/**
 * The ONNX embedder of a pretrained base cut at `cuts` (the first is what `embed` returns);
 * a concat cut gives its parts side by side.
 * @throws UnsupportedLayerError (export.ts) when a layer cannot be exported; the caller keeps tfjs.
 */
export async function loadOnnxEmbedder(store: ObjectStore, base: OnnxBase, cuts: Cut[]): Promise<OnnxEmbedder> {
  const { ort } = await frozenEngine();
  if (!ort) throw new UserError('BASE_MODEL_ERROR', 'the onnx engine is not available in this process');
  const { parts, plan } = partsOf(cuts);
  const { key, bytes } = await storedGraph(store, base, parts);
  const { session, sizes } = await sessionFor(ort, key, bytes, base.descriptor.inputShape, parts.length);
  return new OnnxEmbedder(ort, session, base.descriptor.inputShape, sizes, key, plan);
}
