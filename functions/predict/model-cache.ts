import sharp from 'sharp';
import type { LayersModel } from '@tensorflow/tfjs';
import { ApiError } from '../../shared/http/api.js';
import { LeaseCache, LruCache } from '../../shared/lru.js';
import type { ObjectStore } from '../../shared/ports/object-store.js';
import type { ModelMetadata } from '../../shared/schemas/model.js';
import type { Instance, PredictRequest, TaskPrediction } from '../../shared/schemas/predict.js';
import { decodeImage, ImageDecodeError } from '../../shared/data/images.js';
import { resolveBase } from '../../shared/ml/base-models.js';
import { loadEmbedder, type Embedder, type EmbedOptions } from '../../shared/ml/embedder.js';
import { cutKey } from '../../shared/ml/cuts.js';
import { loadModel } from '../../shared/ml/model-io.js';
import { predictTasks, selectTasks, UnknownTaskError } from '../../shared/ml/predict.js';
import { loadPrototypes, scorePrototypes, type Prototypes } from '../../shared/ml/prototype-classifier.js';
import { taskKind } from '../../shared/ml/task-kinds.js';
import { standardiseFeatures } from '../../shared/ml/features.js';
import { readMetadata, versionPrefix } from '../../shared/models/registry.js';
import type { ModelCache, Servable } from './core.js';

/** Embeds through a leased embedder: it cannot be freed while this call runs. */
type EmbedFn = (pixels: Uint8Array, count: number, opts?: EmbedOptions) => Promise<Float32Array>;

/** Strict base64 (standard or URL-safe alphabet), optionally as a data URL. */
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

export function decodeBase64Image(value: string, index: number): Buffer {
  const data = value.replace(/^data:[\w/+.-]+;base64,/, '').replace(/\s+/g, '');
  if (!data || data.length % 4 === 1 || !BASE64.test(data)) {
    throw new ApiError(400, 'INVALID_BASE64', `instances[${index}].image is not valid base64`);
  }
  return Buffer.from(data, data.includes('-') || data.includes('_') ? 'base64url' : 'base64');
}

/** Turns request instances into the input the model was trained on, or a 400 naming the instance. */
async function toPixels(instances: Instance[], meta: ModelMetadata): Promise<Uint8Array> {
  if (meta.input.type !== 'image') throw new Error('not an image model');
  const shape = meta.input.shape;
  const per = shape[0] * shape[1] * shape[2];
  const out = new Uint8Array(instances.length * per);
  await Promise.all(
    instances.map(async (inst, i) => {
      if (!('image' in inst)) throw new ApiError(400, 'INVALID_INPUT', `instances[${i}]: model ${meta.model} takes images: send {"image": "<base64>"}`);
      try {
        out.set(await decodeImage(decodeBase64Image(inst.image, i), shape), i * per);
      } catch (err) {
        if (err instanceof ImageDecodeError) throw new ApiError(400, 'INVALID_IMAGE', `instances[${i}].image: ${err.message}`);
        throw err;
      }
    }),
  );
  return out;
}

/** Vector instances as the model reads them, or a 400 naming the instance and the expected length. */
function toFeatures(instances: Instance[], meta: ModelMetadata): Float32Array {
  if (meta.input.type !== 'vector') throw new Error('not a vector model');
  const size = meta.input.size;
  const out = new Float32Array(instances.length * size);
  instances.forEach((inst, i) => {
    if (!('features' in inst))
      throw new ApiError(400, 'INVALID_INPUT', `instances[${i}]: model ${meta.model} takes vectors: send {"features": [${size} numbers]}`);
    if (inst.features.length !== size)
      throw new ApiError(400, 'INVALID_INPUT', `instances[${i}].features has ${inst.features.length} values; model ${meta.model} expects ${size}`);
    out.set(
      inst.features.map((v) => v ?? Number.NaN),
      i * size,
    );
  });
  // The train split's standardisation, stored with the model; a null becomes the train mean.
  return standardiseFeatures(out, size, meta.input);
}

class HeadServable implements Servable {
  constructor(
    readonly metadata: ModelMetadata,
    private readonly embed: EmbedFn | undefined,
    private readonly head: LayersModel,
  ) {}

  async predict(request: PredictRequest): Promise<Array<Record<string, TaskPrediction>>> {
    const n = request.instances.length;
    // Check the task names before any decoding or compute.
    this.selectOrThrow(request.tasks);
    const embeddings = this.embed
      ? // The version's input shape can differ from its embedder's (e.g. a model extended from one on another base).
        await this.embed(await toPixels(request.instances, this.metadata), n, {
          sourceShape: this.metadata.input.type === 'image' ? this.metadata.input.shape : undefined,
        })
      : toFeatures(request.instances, this.metadata);
    return predictTasks(this.head, this.metadata.tasks, embeddings, n, { tasks: request.tasks, topK: request.topK });
  }

  private selectOrThrow(tasks?: string[]) {
    try {
      return selectTasks(this.metadata.tasks, tasks);
    } catch (err) {
      if (err instanceof UnknownTaskError) throw new ApiError(400, 'UNKNOWN_TASK', err.message);
      throw err;
    }
  }

  dispose(): void {
    this.head.dispose();
  }
}

/** A nearest-class-mean model (mode "prototype"): scores are a softmax over scaled cosine similarities. */
class PrototypeServable implements Servable {
  constructor(
    readonly metadata: ModelMetadata,
    private readonly embed: EmbedFn,
    private readonly prototypes: Prototypes,
  ) {}

  async predict(request: PredictRequest): Promise<Array<Record<string, TaskPrediction>>> {
    let selected;
    try {
      selected = selectTasks(this.metadata.tasks, request.tasks);
    } catch (err) {
      if (err instanceof UnknownTaskError) throw new ApiError(400, 'UNKNOWN_TASK', err.message);
      throw err;
    }
    const n = request.instances.length;
    const shape = this.metadata.input.type === 'image' ? this.metadata.input.shape : undefined;
    const x = await this.embed(await toPixels(request.instances, this.metadata), n, { sourceShape: shape });
    const scores = scorePrototypes(this.prototypes, x, n);
    return Array.from({ length: n }, (_, r) =>
      Object.fromEntries(
        selected.map((head) => {
          const t = this.prototypes.tasks.findIndex((p) => p.name === head.name);
          const k = this.prototypes.tasks[t].labels.length;
          return [head.name, taskKind('classification').format(scores[t].subarray(r * k, (r + 1) * k), head, request.topK)];
        }),
      ),
    );
  }

  dispose(): void {}
}

export interface ModelCacheOptions {
  /** Model versions kept loaded. @default 4 */
  capacity?: number;
}

/** Versions whose metadata is kept (a few kB each): more than are loaded, so a model that falls out is resolved without a read. */
const METADATA_KEPT = 64;

/**
 * Loaded models keyed by `model@version` (a version never changes, so entries
 * never go stale), and embedders keyed by base and cut, shared by every model on
 * that base so the large frozen part is loaded once. Both are LRUs whose entries
 * are freed when they fall out, but never in the middle of a prediction. Version
 * metadata is kept too, so a predict call reads only its alias from the store.
 */
export function createModelCache(store: ObjectStore, options: ModelCacheOptions = {}): ModelCache {
  const capacity = options.capacity ?? 4;
  const models = new LeaseCache<string, Servable>(capacity, (s) => s.dispose());
  const embedders = new LeaseCache<string, Embedder>(capacity, (e) => e.dispose());
  const metadata = new LruCache<string, ModelMetadata>(METADATA_KEPT);

  // Keyed by base and cut: a fine-tuned model's embedder stops lower than its base's default.
  const embedWith = ({ name, cut }: ModelMetadata['base']): EmbedFn => {
    const key = cut ? `${name}#${cutKey(cut)}` : name;
    const load = () => resolveBase(store, name).then((b) => loadEmbedder(store, b, cut ? { embedding: cut } : {}));
    return (pixels, count, opts) => embedders.use(key, load, (e) => e.embed(pixels, count, opts));
  };

  const load = async (meta: ModelMetadata): Promise<Servable> => {
    const prefix = versionPrefix(meta.model, meta.version);
    if (meta.kind === 'prototype') return new PrototypeServable(meta, embedWith(meta.base), await loadPrototypes(store, prefix));
    return new HeadServable(meta, meta.input.type === 'image' ? embedWith(meta.base) : undefined, await loadModel(store, prefix));
  };

  const predict: ModelCache['predict'] = (meta, request) =>
    models.use(
      `${meta.model}@${meta.version}`,
      () => load(meta),
      (s) => s.predict(request),
    );

  return {
    async readVersion(model, version) {
      const key = `${model}@${version}`;
      const kept = metadata.get(key);
      if (kept) return kept;
      // Only readable metadata is kept: a missing or broken version is read again next time.
      const meta = await readMetadata(store, model, version);
      if (meta) metadata.set(key, meta);
      return meta;
    },
    predict,
    async warm(meta) {
      const instance = meta.input.type === 'image' ? { image: await blankImage() } : { features: new Array<number>(meta.input.size).fill(0) };
      await predict(meta, { instances: [instance], topK: 1 });
    },
  };
}

let blank: Promise<string> | undefined;
/** A small white PNG, base64: decoding it runs the same code as a caller's image does. */
function blankImage(): Promise<string> {
  blank ??= sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .png()
    .toBuffer()
    .then((b) => b.toString('base64'));
  blank.catch(() => (blank = undefined)); // the next warm-up tries again
  return blank;
}
