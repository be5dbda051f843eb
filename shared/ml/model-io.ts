/**
 * Saves and loads tfjs LayersModels to and from an ObjectStore prefix, in the
 * standard tfjs layout (`model.json` + one `weights.bin`), so a model written here
 * also loads with `tf.loadLayersModel('file://…/model.json')` from a copied folder.
 */
import type { io, LayersModel, Tensor } from '@tensorflow/tfjs';
import type { ObjectStore } from '../ports/object-store.js';
import { getJson } from '../ports/object-store.js';
import { loadTf } from '../tf/loader.js';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

export class ModelFormatError extends Error {
  override name = 'ModelFormatError';
}

function joinBuffers(data: ArrayBuffer | ArrayBuffer[] | undefined): Uint8Array {
  if (!data) return new Uint8Array(0);
  const parts = Array.isArray(data) ? data : [data];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(new Uint8Array(p), off);
    off += p.byteLength;
  }
  return out;
}

/**
 * A tfjs IOHandler over `<prefix>/model.json` and `<prefix>/weights.bin`.
 * Weights are written before model.json, so a reader that finds model.json finds
 * its weights too. Loading accepts any number of weight files in the manifest
 * (tfjs converters shard at 4 MB), resolved relative to the prefix.
 */
export function objectStoreIO(store: ObjectStore, prefix: string): io.IOHandler {
  const base = prefix.replace(/\/+$/, '');
  return {
    async save(artifacts: io.ModelArtifacts): Promise<io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) throw new ModelFormatError('binary model topologies are not supported');
      const weights = joinBuffers(artifacts.weightData);
      const modelJson: io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
        ...(artifacts.trainingConfig ? { trainingConfig: artifacts.trainingConfig } : {}),
        ...(artifacts.userDefinedMetadata ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
      };
      await store.put(`${base}/${WEIGHTS_BIN}`, weights, { contentType: 'application/octet-stream' });
      const json = JSON.stringify(modelJson);
      await store.put(`${base}/${MODEL_JSON}`, json, { contentType: 'application/json' });
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          modelTopologyBytes: JSON.stringify(modelJson.modelTopology).length,
          weightSpecsBytes: JSON.stringify(modelJson.weightsManifest).length,
          weightDataBytes: weights.byteLength,
        },
      };
    },
    async load(): Promise<io.ModelArtifacts> {
      const modelJson = await getJson<io.ModelJSON>(store, `${base}/${MODEL_JSON}`);
      if (!modelJson?.modelTopology) throw new ModelFormatError(`${base}/${MODEL_JSON} has no modelTopology`);
      const manifest = modelJson.weightsManifest ?? [];
      const parts: Buffer[] = [];
      for (const group of manifest) {
        for (const p of group.paths) {
          if (p.startsWith('/') || p.split('/').includes('..')) throw new ModelFormatError(`weights path ${p} leaves the model folder`);
          parts.push(await store.get(`${base}/${p}`));
        }
      }
      const all = Buffer.concat(parts);
      const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
      return {
        modelTopology: modelJson.modelTopology,
        format: modelJson.format,
        generatedBy: modelJson.generatedBy,
        convertedBy: modelJson.convertedBy,
        trainingConfig: modelJson.trainingConfig,
        userDefinedMetadata: modelJson.userDefinedMetadata,
        weightSpecs: manifest.flatMap((g) => g.weights),
        weightData,
      };
    },
  };
}

/** Saves a model under `<prefix>/` (model.json + weights.bin). */
export async function saveModel(model: LayersModel, store: ObjectStore, prefix: string): Promise<void> {
  await model.save(objectStoreIO(store, prefix));
}

/** Loads the LayersModel stored under `<prefix>/`. */
export async function loadModel(store: ObjectStore, prefix: string): Promise<LayersModel> {
  const { tf } = await loadTf();
  return tf.loadLayersModel(objectStoreIO(store, prefix));
}

/**
 * Saves bare weight tensors (in model.getWeights() order) as `<key>.bin` plus
 * `<key>.json` with their specs; used for training checkpoints, where the
 * architecture is rebuilt from the spec and only the numbers need keeping.
 */
export async function saveWeights(store: ObjectStore, key: string, tensors: Tensor[]): Promise<void> {
  const { tf } = await loadTf();
  const { data, specs } = await tf.io.encodeWeights(tensors.map((tensor, i) => ({ name: `w${i}`, tensor })));
  await store.put(`${key}.bin`, joinBuffers(data), { contentType: 'application/octet-stream' });
  await store.put(`${key}.json`, JSON.stringify(specs), { contentType: 'application/json' });
}

/** Loads tensors written by saveWeights, in the same order; the caller owns them. */
export async function loadWeights(store: ObjectStore, key: string): Promise<Tensor[]> {
  const { tf } = await loadTf();
  const specs = await getJson<io.WeightsManifestEntry[]>(store, `${key}.json`);
  const bin = await store.get(`${key}.bin`);
  const map = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) as ArrayBuffer, specs);
  return specs.map((s) => {
    const t = map[s.name];
    if (!t) throw new ModelFormatError(`weights file ${key} lacks ${s.name}`);
    return t;
  });
}
