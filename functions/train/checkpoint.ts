/**
 * Per-epoch checkpoints of every training stage (heads, fine-tuning, continual),
 * so a retried job (a reclaimed Spot instance, a kill -9) continues where the
 * last attempt stopped. Each stage keeps its own manifest: a fine-tuning job
 * killed while fine-tuning finds its heads whole and its fine-tuning half done.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import { loadWeights, saveWeights } from '../../shared/ml/model-io.js';
import type { StageCheckpoint, TrainCheckpoint } from '../../shared/ml/train.js';
import { NotFoundError, putJson, readJsonIfExists, type ObjectStore } from '../../shared/ports/object-store.js';
import { CheckpointManifestSchema, type CheckpointManifest } from '../../shared/schemas/checkpoint.js';

export const checkpointPrefix = (jobId: string) => `jobs/${jobId}/checkpoint`;

/** The training stages that checkpoint; `heads` keeps the original layout (`checkpoint/state.json`). */
export type CheckpointStage = 'heads' | 'fine-tune' | 'continual';
const stagePrefix = (jobId: string, stage: CheckpointStage) => (stage === 'heads' ? checkpointPrefix(jobId) : `${checkpointPrefix(jobId)}/${stage}`);
const manifestKey = (jobId: string, stage: CheckpointStage) => `${stagePrefix(jobId, stage)}/state.json`;

export function stageCheckpoint(store: ObjectStore, jobId: string, stage: CheckpointStage, fingerprint: string): StageCheckpoint {
  return {
    load: (model) => loadCheckpoint(store, jobId, fingerprint, model, stage),
    save: (model, cp) => saveCheckpoint(store, jobId, fingerprint, model, cp, stage),
  };
}

export async function saveCheckpoint(
  store: ObjectStore,
  jobId: string,
  fingerprint: string,
  model: LayersModel,
  cp: TrainCheckpoint,
  stage: CheckpointStage = 'heads',
): Promise<void> {
  const previous = await readJsonIfExists(store, manifestKey(jobId, stage), CheckpointManifestSchema);
  // Each epoch's weights go to a fresh folder and state.json (written last) points
  // at it, so a crash mid-save leaves the previous checkpoint whole.
  const weightsPrefix = `${stagePrefix(jobId, stage)}/e${cp.state.nextEpoch}`;
  await saveWeights(store, `${weightsPrefix}/current`, model.getWeights());
  if (cp.bestWeights) await saveWeights(store, `${weightsPrefix}/best`, cp.bestWeights);
  // JSON has no Infinity: before any improvement `best` is stored as null.
  const manifest: CheckpointManifest = { fingerprint, weightsPrefix, state: { ...cp.state, best: Number.isFinite(cp.state.best) ? cp.state.best : null } };
  await putJson(store, manifestKey(jobId, stage), manifest);
  if (previous && previous.weightsPrefix !== weightsPrefix) await deleteUnder(store, `${previous.weightsPrefix}/`);
}

/** The checkpoint of this job for this fingerprint, its current weights set on `model`; undefined when there is none to resume. */
export async function loadCheckpoint(
  store: ObjectStore,
  jobId: string,
  fingerprint: string,
  model: LayersModel,
  stage: CheckpointStage = 'heads',
): Promise<TrainCheckpoint | undefined> {
  const manifest = await readJsonIfExists(store, manifestKey(jobId, stage), CheckpointManifestSchema);
  if (!manifest || manifest.fingerprint !== fingerprint) return undefined;
  try {
    const current = await loadWeights(store, `${manifest.weightsPrefix}/current`);
    model.setWeights(current);
    current.forEach((t) => t.dispose());
    const bestWeights = manifest.state.bestEpoch >= 0 ? await loadWeights(store, `${manifest.weightsPrefix}/best`) : undefined;
    return { state: manifest.state, bestWeights };
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

async function deleteUnder(store: ObjectStore, prefix: string): Promise<void> {
  for (const o of await store.list(prefix)) await store.delete(o.key);
}

export async function deleteCheckpoint(store: ObjectStore, jobId: string): Promise<void> {
  await deleteUnder(store, `${checkpointPrefix(jobId)}/`);
}
