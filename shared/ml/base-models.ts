/**
 * Base models: the frozen part of a transfer-learning model.
 *
 * A spec's `base` names one of:
 * - `none`: no pretrained part; the model reads (downsampled) pixels directly.
 * - a base in the store: `base-models/<name>/descriptor.json` next to a tfjs model.
 *   Built-in bases are imported into the store on first use, so every later reader
 *   (training job, predict function) loads them the same way as any other.
 * - `model:<name>[@version]`: a model trained on this platform, pinned to a version
 *   and cut at its trunk (see model-base.ts).
 */
import path from 'node:path';
import { z } from 'zod';
import { createRequire } from 'node:module';
import { getJsonIfExists, type ObjectStore } from '../ports/object-store.js';
import { BaseModelDescriptorSchema, type BaseModelDescriptor } from '../schemas/base-model.js';
import type { ModelMetadata } from '../schemas/model.js';
import { ModelNotFoundError, resolveModel, versionPrefix } from '../models/registry.js';
import { EMBEDDING_INPUT } from './architectures.js';
import { UserError } from '../errors.js';

export type ResolvedBase =
  | { kind: 'pretrained'; name: string; descriptor: BaseModelDescriptor }
  | { kind: 'none'; name: 'none'; inputShape: [number, number, number] }
  /** A model trained here; `name` is `model:<model>@<version>`, `layer` the layer of its stored model whose output is the embedding. */
  | {
      kind: 'model';
      name: string;
      source: ModelMetadata;
      layer: string;
      inputShape: [number, number, number];
      /** The layers from the stored model's input to `layer` (dropout skipped), input first: the cuts the representation search tries. */
      path?: string[];
    };

export class UnknownBaseModelError extends UserError {
  override name = 'UnknownBaseModelError';
  constructor(message: string) {
    super('UNKNOWN_BASE_MODEL', message);
  }
}

/**
 * Pixel input of `base: "none"`. A dense network on raw pixels is what the wasm
 * backend can train (it has no conv gradients); 32×32×3 keeps the first dense
 * layer at 3072 inputs, small enough to train in seconds and large enough for
 * coarse shapes and colours.
 */
export const NONE_INPUT_SHAPE: [number, number, number] = [32, 32, 3];

export const baseModelPrefix = (name: string) => `base-models/${name}`;
export const descriptorKey = (name: string) => `${baseModelPrefix(name)}/descriptor.json`;

/**
 * Where `mobilenet_v2` is cut: `flatten_1`, the 1280-d globally pooled output of
 * the last conv block (out_relu → 7×7 average pool → flatten).
 *
 * Measured with `benchEmbeddingLayers` in bench/ml.ts (tfjs wasm, 2 shared cores):
 * Fashion-MNIST, 28×28 grey upscaled to 224×224×3, 30 train + 30 test images per
 * class (300 + 300), test accuracy of a softmax head trained on the embeddings and
 * of nearest-class-mean (cosine):
 *
 * | cut                              | size | softmax head | nearest mean | images/s |
 * | -------------------------------- | ---- | ------------ | ------------ | -------- |
 * | flatten_1                        | 1280 | 0.750        | 0.583        | 12.6     |
 * | block_13_expand_relu, avg pooled |  576 | 0.710        | 0.610        | 11.9     |
 * | block_16_project, avg pooled     |  320 | 0.717        | 0.610        | 13.5     |
 * | (none: raw 28×28 pixels)         |  784 | 0.790        | 0.730        | —        |
 *
 * Two smaller runs (20 + 20 per class) ranked the heads the same way (flatten_1
 * 0.705 / 0.700 vs block_13 0.655 / 0.685; nearest mean 0.535 vs 0.610). The
 * training job trains a head, and there `flatten_1` is best by 1.5-5 points, so it
 * is the default. The mid-level cuts are better for nearest-class-mean (few-shot
 * prototypes; a later issue may cut there) and skip the last blocks: measured
 * 0.9-1.7× the speed of flatten_1, but the three runs shared a loaded 2-core machine, so the
 * speed figures are noisy while the accuracy ranking was stable. Raw pixels winning
 * on Fashion-MNIST says these features (trained by nsfwjs on photos) transfer
 * poorly to small grey product shots: a from-scratch baseline next to every
 * transfer result (planned) is worth its cost.
 */
export const MOBILENET_V2_EMBEDDING = { layer: 'flatten_1', pooling: 'none', size: 1280 } as const;

/**
 * Prototype models of `mobilenet_v2` try the two mid-level cuts beside `flatten_1`
 * (leave-one-out picks one when every class has two examples), and fall back to
 * `block_13_expand_relu` pooled when a class has one: nearest-class-mean accuracy in
 * the table above was 0.610 there against 0.583 at `flatten_1` (0.610 vs 0.535 in a
 * run of 20 + 20 per class), and it tied `block_16_project` in both runs.
 */
export const MOBILENET_V2_FEW_SHOT = {
  candidates: [
    { layer: 'block_13_expand_relu', pooling: 'avg' },
    { layer: 'block_16_project', pooling: 'avg' },
  ],
  fallback: { layer: 'block_13_expand_relu', pooling: 'avg' },
} as const;

/**
 * The representation search of `mobilenet_v2` (shared/ml/search.ts) tries the same two
 * mid-level cuts beside `flatten_1` (and the raw pixels): with a cross-validated linear
 * model on Fashion-MNIST they led `flatten_1` at 10 and 30 images per class in some
 * seeds and trailed it in others (bench/representations.ts), so neither is a safe fixed
 * choice, and both come out of the same forward pass as `flatten_1`.
 */
export const MOBILENET_V2_SEARCH = {
  candidates: [
    { layer: 'block_13_expand_relu', pooling: 'avg' },
    { layer: 'block_16_project', pooling: 'avg' },
  ],
} as const;

interface BuiltinBase {
  descriptor: BaseModelDescriptor;
  /** Writes model.json and weights.bin under base-models/<name>/. */
  writeModel(store: ObjectStore): Promise<void>;
}

const require = createRequire(import.meta.url);

/** The MobileNetV2 whose weights ship in nsfwjs@4.4.0, as a CommonJS module pair. */
async function writeNsfwjsMobileNetV2(store: ObjectStore): Promise<void> {
  // The package's `exports` map hides dist/models; resolve its entry and walk from there.
  const dist = path.resolve(path.dirname(require.resolve('nsfwjs')), '..');
  const dir = path.join(dist, 'models', 'mobilenet_v2');
  const model = require(path.join(dir, 'model.min.js')) as { modelTopology: unknown; weightsManifest: Array<{ paths: string[]; weights: unknown[] }> };
  const weightsB64 = require(path.join(dir, 'group1-shard1of1.min.js')) as string;
  if (!model?.modelTopology || !Array.isArray(model.weightsManifest) || model.weightsManifest.length !== 1 || typeof weightsB64 !== 'string') {
    throw new UnknownBaseModelError('the nsfwjs package does not hold the expected MobileNetV2 files');
  }
  const prefix = baseModelPrefix('mobilenet_v2');
  const modelJson = {
    format: 'layers-model',
    generatedBy: 'keras (via nsfwjs@4.4.0)',
    convertedBy: 'transfer-learning-platform base import',
    modelTopology: model.modelTopology,
    // Weights stay uint8-quantized as shipped: the manifest's `quantization` entries
    // let tfjs dequantize on load, and the file stays 2.6 MB instead of 10 MB.
    weightsManifest: [{ paths: ['weights.bin'], weights: model.weightsManifest[0].weights }],
  };
  await store.putIfAbsent(`${prefix}/weights.bin`, Buffer.from(weightsB64, 'base64'), { contentType: 'application/octet-stream' });
  await store.putIfAbsent(`${prefix}/model.json`, JSON.stringify(modelJson), { contentType: 'application/json' });
}

const BUILTIN_BASES: Record<string, BuiltinBase> = {
  mobilenet_v2: {
    descriptor: BaseModelDescriptorSchema.parse({
      name: 'mobilenet_v2',
      inputShape: [224, 224, 3],
      // nsfwjs feeds `pixels / 255` (core.js: img.toFloat().div(255)); its weights were
      // trained that way, not with Keras' usual [-1, 1] MobileNet preprocessing.
      normalization: { scale: 1 / 255, offset: 0 },
      embedding: MOBILENET_V2_EMBEDDING,
      fewShot: MOBILENET_V2_FEW_SHOT,
      search: MOBILENET_V2_SEARCH,
      modelKey: `${baseModelPrefix('mobilenet_v2')}/model.json`,
      provenance: {
        source: 'npm nsfwjs@4.4.0, dist/models/mobilenet_v2',
        license: 'MIT',
        notes: 'Keras MobileNetV2 (alpha 1.0, 224x224) trained by the nsfwjs authors on their five classes; weights uint8-quantized.',
      },
    }),
    writeModel: writeNsfwjsMobileNetV2,
  },
};

/** Names of the bases that can be imported without any upload. */
export const builtinBaseNames = (): string[] => Object.keys(BUILTIN_BASES);

/**
 * Resolves a spec's `base`; imports a built-in base (mobilenet_v2) into the store
 * on first use. The descriptor is written last, so its presence means the model
 * files are complete; concurrent first uses write identical bytes with putIfAbsent.
 * @throws UnknownBaseModelError for a name that is neither `none`, in the store, nor built in.
 */
export async function resolveBase(store: ObjectStore, base: string): Promise<ResolvedBase> {
  if (base === 'none') return { kind: 'none', name: 'none', inputShape: [...NONE_INPUT_SHAPE] };
  if (base.startsWith('model:')) return resolveModelBase(store, base);
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/i.test(base)) throw new UnknownBaseModelError(`base "${base}" is not a valid base model name`);

  const stored = await getJsonIfExists(store, descriptorKey(base));
  if (stored !== undefined) {
    const parsed = BaseModelDescriptorSchema.safeParse(stored);
    if (!parsed.success) throw new UnknownBaseModelError(`base "${base}" has an invalid descriptor.json: ${parsed.error.issues[0]?.message}`);
    return { kind: 'pretrained', name: base, descriptor: parsed.data };
  }
  const builtin = BUILTIN_BASES[base];
  if (!builtin) {
    const known = ['none', ...builtinBaseNames()].map((n) => `"${n}"`).join(', ');
    throw new UnknownBaseModelError(`unknown base model "${base}"; known: ${known}, or a base uploaded under base-models/<name>/`);
  }
  await builtin.writeModel(store);
  await store.putIfAbsent(descriptorKey(base), JSON.stringify(builtin.descriptor, null, 2), { contentType: 'application/json' });
  return { kind: 'pretrained', name: base, descriptor: builtin.descriptor };
}

/*
 * A model trained on this platform used as the base of another: `base:
 * "model:<name>[@version]"`, resolved here with the other bases; its embedder is in
 * trained-model-embedder.ts.
 */

/** A trained model used as a base. */
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

const KerasLayerJsonSchema = z.looseObject({ name: z.string(), class_name: z.string(), inbound_nodes: z.array(z.unknown()).optional() });
type KerasLayerJson = z.infer<typeof KerasLayerJsonSchema>;
const KerasModelConfigSchema = z.looseObject({ layers: z.array(KerasLayerJsonSchema), output_layers: z.array(z.array(z.unknown())).min(1) });
/** The parts of a stored tfjs model.json the feature layer is read from (Keras functional-model topology). */
const ModelJsonTopologySchema = z.looseObject({
  modelTopology: z.looseObject({ model_config: z.looseObject({ config: KerasModelConfigSchema }).optional(), config: KerasModelConfigSchema.optional() }),
});

/**
 * The feature layer read from a stored model.json (topology only, no weights):
 * follow the first output layer's input back through dropout. More reliable than
 * the spec, which for an extended model (continual learning) describes the new
 * job, not the trunk it kept. Also the path on from there to the model's input
 * (input first, dropout skipped), the other layers a new job could read.
 * Undefined when the topology is not a functional model's.
 */
function featurePathFromTopology(modelJson: unknown): string[] | undefined {
  const parsed = ModelJsonTopologySchema.safeParse(modelJson);
  const config = parsed.success ? (parsed.data.modelTopology.model_config?.config ?? parsed.data.modelTopology.config) : undefined;
  if (!config) return undefined;
  const { layers, output_layers: outputs } = config;
  const byName = new Map(layers.map((l) => [l.name, l]));
  const firstInbound = (l: KerasLayerJson | undefined): string | undefined => {
    const node = (l?.inbound_nodes?.[0] as unknown[] | undefined)?.[0];
    return Array.isArray(node) ? (node[0] as string) : undefined;
  };
  const path: string[] = [];
  const seen = new Set<string>();
  for (let name = firstInbound(byName.get(outputs[0][0] as string)); name && !seen.has(name); name = firstInbound(byName.get(name))) {
    seen.add(name);
    if (byName.get(name)?.class_name !== 'Dropout') path.unshift(name);
  }
  return path.length ? path : undefined;
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
  const path = featurePathFromTopology(await getJsonIfExists(store, `${versionPrefix(source.model, source.version)}/model.json`));
  const layer = path?.at(-1) ?? featureLayerFor(source);
  return { kind: 'model', name: `model:${source.model}@${source.version}`, source, layer, inputShape: [...source.input.shape], path };
}
