/** How two engines' outputs are compared in the export and engine tests. */
import { expect } from 'vitest';

/** max |a − b| over the largest |a|: the agreement measure of the engine issue (≤ 1e-3). */
export function relativeMaxDiff(a: Float32Array, b: Float32Array): number {
  expect(b.length).toBe(a.length);
  let diff = 0;
  let top = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    top = Math.max(top, Math.abs(a[i]));
  }
  return diff / top;
}

/** The index of the largest value of each row of `size` values. */
export function argmaxRows(x: Float32Array, size: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / size; r++) {
    let best = 0;
    for (let j = 1; j < size; j++) if (x[r * size + j] > x[r * size + best]) best = j;
    out.push(best);
  }
  return out;
}
