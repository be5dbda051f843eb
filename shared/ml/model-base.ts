/**
 * A model trained on this platform used as the base of another:
 * `base: "model:<name>[@version]"`. Its embedder is the source model's own
 * embedder followed by the source's stored model cut at a named layer (by
 * default the shared trunk that its heads read), so what the source learned on
 * its task becomes the features of the new one. A cat detector's trunk can then
 * serve to locate cat faces.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import { ModelNotFoundError, resolveModel, versionPrefix } from '../models/registry.js';
import { getJsonIfExists, type ObjectStore } from '../ports/object-store.js';
import type { ModelMetadata } from '../schemas/model.js';
import { loadTf } from '../tf/loader.js';
import { resolveBase, UnknownBaseModelError, type ResolvedBase } from './base-models.js';
import { loadEmbedder, type EmbedOptions, type Embedder, type ImageShape, type LoadEmbedderOptions } from './embedder.js';
import { predictOutputs } from './fine-tune.js';
import { EMBEDDING_INPUT } from './heads.js';
import { loadModel, objectStoreIO } from './model-io.js';

export type ModelBase = Extract<ResolvedBase, { kind: 'model' }>;

const MODEL_BASE = /^model:([a-z0-9][a-z0-9_-]{0,62})(?:@([a-z0-9_-]+))?$/i;

/**
 * The layer of a trained model whose output serves as features: the last layer
 * of a hard-shared trunk, or the model's input (its own base embedding) when the
 * heads share nothing.
 */
export function featureLayerFor(meta: ModelMetadata): string {
  const sharing = meta.spec.sharing;
  if (sharing.method === 'hard' && sharing.trunk.length > 0) return `trunk_${sharing.trunk.length - 1}`;
  return EMBEDDING_INPUT;
}

interface KerasLayerJson {
  name: string;
  class_name: string;
  inbound_nodes?: unknown[];
}

/**
 * The feature layer read from a stored model.json (topology only, no weights):
 * follow the first output layer's input back through dropout. More reliable than
 * the spec, which for an extended model (continual learning) describes the new
 * job, not the trunk it kept.
 */
function featureLayerFromTopology(modelJson: unknown): string | undefined {
  const topo = (modelJson as { modelTopology?: Record<string, any> })?.modelTopology;
  const config = topo?.model_config?.config ?? topo?.config;
  const layers: KerasLayerJson[] | undefined = config?.layers;
  const outputs: unknown[] | undefined = config?.output_layers;
  if (!layers || !outputs?.length) return undefined;
  const byName = new Map(layers.map((l) => [l.name, l]));
  const firstInbound = (l: KerasLayerJson | undefined): string | undefined => {
    const node = (l?.inbound_nodes?.[0] as unknown[] | undefined)?.[0];
    return Array.isArray(node) ? (node[0] as string) : undefined;
  };
  let name = firstInbound(byName.get((outputs[0] as unknown[])[0] as string));
  while (name && byName.get(name)?.class_name === 'Dropout') name = firstInbound(byName.get(name));
  return name;
}

/**
 * Resolves `model:<name>[@version]` to a pinned version (an alias is followed
 * once, here, so a later `latest` never changes what an existing model reads).
 * @throws UnknownBaseModelError when the model or version does not exist or cannot serve as a base.
 */
export async function resolveModelBase(store: ObjectStore, base: string): Promise<ModelBase> {
  const m = MODEL_BASE.exec(base);
  if (!m) throw new UnknownBaseModelError(`base "${base}" is not "model:<name>[@version]"`);
  let source: ModelMetadata;
  try {
    source = await resolveModel(store, m[1], m[2] ?? 'latest');
  } catch (err) {
    if (err instanceof ModelNotFoundError) throw new UnknownBaseModelError(`base "${base}": ${err.message}`);
    throw err;
  }
  if (source.kind !== 'train') throw new UnknownBaseModelError(`base "${base}" is a ${source.kind} model; only trained models have a trunk to reuse`);
  if (source.input.type !== 'image') throw new UnknownBaseModelError(`base "${base}" reads vectors; only image models can serve as a base`);
  const layer = featureLayerFromTopology(await getJsonIfExists(store, `${versionPrefix(source.model, source.version)}/model.json`)) ?? featureLayerFor(source);
  return { kind: 'model', name: `model:${source.model}@${source.version}`, source, layer, inputShape: [...source.input.shape] };
}

/** The source's base, resolved as its own metadata says (and cut where it says). */
async function parentOf(store: ObjectStore, source: ModelMetadata): Promise<{ base: ResolvedBase; opts: LoadEmbedderOptions }> {
  return { base: await resolveBase(store, source.base.name), opts: source.base.cut ? { embedding: source.base.cut } : {} };
}

class ModelEmbedder implements Embedder {
  readonly size: number;
  readonly inputShape: ImageShape;
  constructor(
    private readonly parent: Embedder,
    private readonly stored: LayersModel,
    private readonly cut: LayersModel | undefined,
  ) {
    this.inputShape = parent.inputShape;
    this.size = cut ? (cut.outputs[0].shape.slice(1) as number[]).reduce((a, b) => a * b, 1) : parent.size;
  }
  async embed(pixels: Uint8Array, count: number, opts?: EmbedOptions): Promise<Float32Array> {
    const e = await this.parent.embed(pixels, count, opts);
    return this.cut ? (await predictOutputs(this.cut, e, count))[0] : e;
  }
  dispose(): void {
    this.parent.dispose();
    this.stored.dispose();
  }
}

/** Loads the embedder of a `model:` base, cut at `opts.embedding.layer` or the base's feature layer. */
export async function loadModelEmbedder(store: ObjectStore, base: ModelBase, opts: LoadEmbedderOptions = {}): Promise<Embedder> {
  const { tf } = await loadTf();
  const parent = await parentOf(store, base.source);
  const parentEmbedder = await loadEmbedder(store, parent.base, parent.opts);
  let stored: LayersModel | undefined;
  try {
    stored = await loadModel(store, versionPrefix(base.source.model, base.source.version));
    const layerName = opts.embedding?.layer ?? base.layer;
    const layer = stored.layers.find((l) => l.name === layerName);
    if (!layer) throw new UnknownBaseModelError(`base ${base.name} has no layer "${layerName}"`);
    const cut = layer.getClassName() === 'InputLayer' ? undefined : tf.model({ inputs: stored.inputs, outputs: layer.output as never });
    return new ModelEmbedder(parentEmbedder, stored, cut);
  } catch (err) {
    parentEmbedder.dispose();
    stored?.dispose();
    throw err;
  }
}

/**
 * The graph a base's top layers come from when fine-tuning: the pretrained
 * model itself, or a trained model's stored head model. The caller disposes it.
 */
export async function loadBaseGraph(store: ObjectStore, base: ResolvedBase): Promise<{ graph: LayersModel; embeddingLayer: string; pooling: 'none' | 'avg' }> {
  const { tf } = await loadTf();
  if (base.kind === 'pretrained') {
    const prefix = base.descriptor.modelKey.replace(/\/model\.json$/, '');
    return { graph: await tf.loadLayersModel(objectStoreIO(store, prefix)), embeddingLayer: base.descriptor.embedding.layer, pooling: base.descriptor.embedding.pooling };
  }
  if (base.kind === 'model') return { graph: await loadModel(store, versionPrefix(base.source.model, base.source.version)), embeddingLayer: base.layer, pooling: 'none' };
  throw new UnknownBaseModelError('base "none" has no layers to fine-tune');
}
