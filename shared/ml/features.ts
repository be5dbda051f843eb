/**
 * Standardisation of vector (tabular) inputs. Features on very different scales
 * (an age in years beside an income in euros) make a dense layer's gradient steps
 * badly conditioned, so every vector model reads (x − mean) / std with the train
 * split's mean and std. The statistics are fitted in the training job on the train
 * split only (validation and test must not leak into them), stored in the model's
 * metadata (`input.mean`, `input.std`) and applied by everything that feeds the
 * model: training, predict and the promotion gate. Prepared shards keep the raw
 * values, NaN where the manifest had null, so a later version can fit its own.
 *
 * A missing value becomes the train mean (0 once standardised): simple mean
 * imputation, which keeps a linear model's prediction at what it would say for an
 * average value of that feature.
 */

export interface FeatureScaling {
  mean: number[];
  std: number[];
}

/** Per feature: mean and std over the records where it is present; a constant or absent feature gets std 1 (no 0/0), an absent one mean 0. */
export function fitFeatureScaling(x: Float32Array, count: number, size: number): FeatureScaling {
  const sum = new Float64Array(size);
  const sq = new Float64Array(size);
  const n = new Float64Array(size);
  for (let r = 0; r < count; r++) {
    for (let j = 0; j < size; j++) {
      const v = x[r * size + j];
      if (Number.isNaN(v)) continue;
      sum[j] += v;
      n[j]++;
    }
  }
  const mean = Array.from(sum, (s, j) => (n[j] > 0 ? s / n[j] : 0));
  for (let r = 0; r < count; r++) {
    for (let j = 0; j < size; j++) {
      const v = x[r * size + j];
      if (!Number.isNaN(v)) sq[j] += (v - mean[j]) ** 2;
    }
  }
  const std = Array.from(sq, (s, j) => (n[j] > 0 ? Math.sqrt(s / n[j]) : 0)).map((s) => (s > 1e-12 ? s : 1));
  return { mean, std };
}

/**
 * A new array of (x − mean) / std per feature, NaN (a missing value) as 0, the train
 * mean. Without a scaling only the missing values change.
 */
export function standardiseFeatures(x: Float32Array, size: number, scaling?: Partial<FeatureScaling>): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const j = i % size;
    out[i] = Number.isNaN(v) ? 0 : (v - (scaling?.mean?.[j] ?? 0)) / (scaling?.std?.[j] ?? 1);
  }
  return out;
}
