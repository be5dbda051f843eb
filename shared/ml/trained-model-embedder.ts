/**
 * The embedder of a model trained on this platform used as the base of another
 * (`base: "model:<name>[@version]"`, resolved in base-models.ts): the source
 * model's own embedder followed by the source's stored model cut at a named layer
 * (by default the shared trunk its heads read), so what the source learned on its
 * task becomes the features of the new one. A cat detector's trunk can then serve
 * to locate cat faces.
 */
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs';
import { versionPrefix } from '../models/registry.js';
import type { ObjectStore } from '../ports/object-store.js';
import type { ModelMetadata } from '../schemas/model.js';
import { loadTf } from '../tf/loader.js';
import { resolveBase, UnknownBaseModelError, type ModelBase, type ResolvedBase } from './base-models.js';
import type { EmbedOptions, Embedder, ImageShape, LoadEmbedderOptions, MultiCutEmbedder } from './embedder.js';
import { predictOutputs } from './inference.js';
import { describeCut } from './cuts.js';
import { UserError } from '../errors.js';
import { loadModel } from './model-io.js';

/** Loads the embedder of any base: how the source's own base is loaded (passed in, so this module does not import the dispatcher that imports it). */
export type LoadBaseEmbedder = (store: ObjectStore, base: ResolvedBase, opts: LoadEmbedderOptions) => Promise<Embedder>;

/** The source's base, resolved as its own metadata says (and cut where it says). */
async function parentOf(store: ObjectStore, source: ModelMetadata): Promise<{ base: ResolvedBase; opts: LoadEmbedderOptions }> {
  return { base: await resolveBase(store, source.base.name), opts: source.base.cut ? { embedding: source.base.cut } : {} };
}

/**
 * The parent's embedding through the stored model up to each requested layer: one pass
 * of the parent (the expensive part) serves every layer (`embedCuts`, the search's
 * candidates); `embed` gives the first. A layer that is the stored model's input is the
 * parent's embedding itself.
 */
class ModelEmbedder implements MultiCutEmbedder {
  readonly size: number;
  readonly sizes: number[];
  readonly inputShape: ImageShape;
  get engine() {
    return this.parent.engine;
  }
  /**
   * @param trunk the stored model cut at every requested layer that is not its input (undefined when all are)
   * @param outputOf per requested layer, its output index in `trunk`, or -1 for the input
   */
  constructor(
    private readonly parent: Embedder,
    private readonly stored: LayersModel,
    private readonly trunk: LayersModel | undefined,
    private readonly outputOf: number[],
  ) {
    this.inputShape = parent.inputShape;
    this.sizes = outputOf.map((o) => (o < 0 ? parent.size : (trunk!.outputs[o].shape.slice(1) as number[]).reduce((a, b) => a * b, 1)));
    this.size = this.sizes[0];
  }
  async embedCuts(pixels: Uint8Array, count: number, opts?: EmbedOptions): Promise<Float32Array[]> {
    const e = await this.parent.embed(pixels, count, opts);
    const outs = this.trunk ? await predictOutputs(this.trunk, e, count) : [];
    return this.outputOf.map((o) => (o < 0 ? e : outs[o]));
  }
  async embed(pixels: Uint8Array, count: number, opts?: EmbedOptions): Promise<Float32Array> {
    return (await this.embedCuts(pixels, count, opts))[0];
  }
  dispose(): void {
    this.parent.dispose();
    this.stored.dispose();
  }
}

/** Loads the embedder of a `model:` base, cut at `opts.embedding.layer` or the base's feature layer. */
export async function loadModelEmbedder(store: ObjectStore, base: ModelBase, opts: LoadEmbedderOptions, loadParent: LoadBaseEmbedder): Promise<Embedder> {
  // A `model:` base is cut at one layer of the stored model; its parent may be a concat cut, it may not.
  if (opts.embedding?.concat?.length)
    throw new UserError(
      'BASE_MODEL_ERROR',
      `base ${base.name} is cut at one layer of its model; a concat cut (${describeCut(opts.embedding)}) applies to a pretrained base`,
    );
  const { tf } = await loadTf();
  const parent = await parentOf(store, base.source);
  const parentEmbedder = await loadParent(store, parent.base, parent.opts);
  let stored: LayersModel | undefined;
  try {
    stored = await loadModel(store, versionPrefix(base.source.model, base.source.version));
    // `cuts` (the search's candidates, the first being `embedding`'s) come out of one pass of the parent.
    const names = opts.cuts?.length ? opts.cuts.map((c) => c.layer) : [opts.embedding?.layer ?? base.layer];
    const layers = names.map((name) => {
      const layer = stored!.layers.find((l) => l.name === name);
      if (!layer) throw new UnknownBaseModelError(`base ${base.name} has no layer "${name}"`);
      return layer;
    });
    const inner = layers.filter((l) => l.getClassName() !== 'InputLayer');
    const trunk = inner.length ? tf.model({ inputs: stored.inputs, outputs: inner.map((l) => l.output as SymbolicTensor) }) : undefined;
    return new ModelEmbedder(
      parentEmbedder,
      stored,
      trunk,
      layers.map((l) => inner.indexOf(l)),
    );
  } catch (err) {
    parentEmbedder.dispose();
    stored?.dispose();
    throw err;
  }
}
