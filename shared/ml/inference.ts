/**
 * Batched forward passes of a model on flat inputs, for everything that reads a
 * model's outputs as arrays: evaluation, thresholds, distillation targets, the
 * promotion gate. Apart from training, so those need not import a trainer.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import { loadTf } from '../tf/loader.js';

/**
 * Runs a model on count×size inputs in batches; returns each output as one
 * Float32Array (count×units), in output order.
 * @param batchSize rows per forward pass. @default 64
 */
export async function predictOutputs(model: LayersModel, x: Float32Array, count: number, batchSize = 64): Promise<Float32Array[]> {
  const { tf } = await loadTf();
  const size = model.inputs[0].shape[1] as number;
  const units = model.outputs.map((o) => o.shape[o.shape.length - 1] as number);
  const result = units.map((u) => new Float32Array(count * u));
  for (let start = 0; start < count; start += batchSize) {
    const n = Math.min(batchSize, count - start);
    const outs = tf.tidy(() => {
      const y = model.predict(tf.tensor2d(x.subarray(start * size, (start + n) * size), [n, size]));
      return Array.isArray(y) ? y : [y];
    });
    for (let i = 0; i < outs.length; i++) {
      result[i].set(await outs[i].data(), start * units[i]);
      outs[i].dispose();
    }
  }
  return result;
}
