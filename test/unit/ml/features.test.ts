import { describe, expect, it } from 'vitest';
import { fitFeatureScaling, standardiseFeatures } from '../../../shared/ml/features.js';

describe('feature standardisation', () => {
  it('fits mean and std per feature over the present values only; a constant or absent feature gets std 1', () => {
    // Prepare: 3 records × 4 features; feature 1 misses a value, 2 is constant, 3 is never present
    const x = Float32Array.from([1, 10, 5, NaN, 3, NaN, 5, NaN, 5, 30, 5, NaN]);

    // Act
    const s = fitFeatureScaling(x, 3, 4);

    // Assess
    expect(s.mean).toEqual([3, 20, 5, 0]);
    expect(s.std[0]).toBeCloseTo(Math.sqrt(8 / 3), 9);
    expect(s.std.slice(1)).toEqual([10, 1, 1]);
  });

  it('standardises, reading a missing value as the train mean (0)', () => {
    const out = standardiseFeatures(Float32Array.from([3, 40, NaN, 1]), 2, { mean: [1, 20], std: [2, 10] });
    expect(Array.from(out)).toEqual([1, 2, 0, Math.fround(-1.9)]);
  });
});
