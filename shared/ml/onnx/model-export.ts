/**
 * A published model as one self-contained ONNX file (issue 9, point 6; served by
 * `GET /models/{model}/export` and saved by `tl export`): the frozen base up to its
 * cut, the heads, and per task one output named after it.
 *
 * Contract: input `image`, float32 NHWC `[N, H, W, 3]`, RGB 0–255 at the model's input
 * size (what predict decodes images to; normalisation, and any resize to the base,
 * inside), or `features` `[N, F]` for vector models (raw values, the train split's
 * standardisation inside, NaN for a missing value); outputs are class probabilities
 * in label order, or regression values in real units (the head's standardisation
 * undone inside); `metadata_props` `tl.tasks` lists the tasks.
 */
import { UserError } from '../../errors.js';
import { versionPrefix } from '../../models/registry.js';
import type { ObjectStore } from '../../ports/object-store.js';
import type { ModelMetadata } from '../../schemas/model.js';
import { loadTf } from '../../tf/loader.js';
import { resolveBase } from '../base-models.js';
import { loadModel, objectStoreIO } from '../model-io.js';
import { selectTasks } from '../predict.js';
import { exportChainToOnnx, type ChainOutput, type ExportChainOptions } from './export.js';

/** The model cannot be exported (yet): the API answers 409 with this message. */
export class NotExportableError extends UserError {
  override name = 'NotExportableError';
  constructor(message: string) {
    super('UNSUPPORTED_SPEC', message);
  }
}

export interface ExportModelOptions {
  /** Tasks to include, auxiliary ones when named. @default every non-auxiliary task */
  tasks?: string[];
}

/**
 * @throws NotExportableError for prototype models and `model:` bases (not covered yet)
 * @throws UnsupportedLayerError (export.ts) naming a layer without an ONNX mapping
 */
export async function exportModelToOnnx(store: ObjectStore, meta: ModelMetadata, opts: ExportModelOptions = {}): Promise<Uint8Array> {
  if (meta.kind !== 'train') throw new NotExportableError(`${meta.model}@${meta.version} is a ${meta.kind} model; only trained models export to ONNX so far`);
  const heads = await loadModel(store, versionPrefix(meta.model, meta.version));
  const disposals = [() => heads.dispose()];
  try {
    let front: ExportChainOptions['front'];
    if (meta.input.type === 'image') {
      const base = await resolveBase(store, meta.base.name);
      if (base.kind === 'model') throw new NotExportableError(`${meta.model} is built on ${base.name}; models on a model: base do not export to ONNX yet`);
      if (base.kind === 'none') front = { kind: 'pixels', shape: [...base.inputShape], scale: 1 / 255 };
      else {
        const { tf } = await loadTf();
        const full = await tf.loadLayersModel(objectStoreIO(store, base.descriptor.modelKey.replace(/\/model\.json$/, '')));
        disposals.push(() => full.dispose());
        front = { kind: 'base', model: full, cut: meta.base.cut ?? base.descriptor.embedding, normalization: base.descriptor.normalization };
      }
    } else if (meta.input.mean || meta.input.std) {
      // The model reads standardised features; the file takes them raw, as predict does.
      const { size } = meta.input;
      front = { kind: 'features', size, mean: meta.input.mean ?? new Array<number>(size).fill(0), std: meta.input.std ?? new Array<number>(size).fill(1) };
    }
    const selected = selectTasks(meta.tasks, opts.tasks);
    const outputs: ChainOutput[] = selected.map((task) => {
      const layer = heads.outputLayers[meta.tasks.indexOf(task)].name;
      return task.type === 'regression' ? { name: task.name, layer, scale: task.std, shift: task.mean } : { name: task.name, layer };
    });
    const tasks = selected.map((t) => ({ name: t.name, type: t.type, ...(t.labels ? { labels: t.labels } : {}) }));
    return exportChainToOnnx({
      front,
      inputShape: meta.input.type === 'image' ? [...meta.input.shape] : undefined,
      heads,
      outputs,
      graphName: `${meta.model}@${meta.version}`,
      metadata: { 'tl.tasks': JSON.stringify(tasks), 'tl.model': meta.model, 'tl.version': meta.version, 'tl.base': meta.base.name },
    });
  } finally {
    for (const dispose of disposals) dispose();
  }
}
