import { describe, expect, it } from 'vitest';
import { loadTf } from '../../../shared/tf/loader.js';
import { registerTransposedMatMul } from '../../../shared/tf/wasm-matmul.js';

/** Plain JS product of a (n×k, or its transpose) and b, row-major, for comparison. */
function reference(a: Float32Array, aShape: number[], ta: boolean, b: Float32Array, bShape: number[], tb: boolean): Float32Array {
  const [ar, ac] = aShape;
  const [br, bc] = bShape;
  const n = ta ? ac : ar;
  const k = ta ? ar : ac;
  const m = tb ? br : bc;
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (ta ? a[p * ac + i] : a[i * ac + p]) * (tb ? b[j * bc + p] : b[p * bc + j]);
      out[i * m + j] = s;
    }
  return out;
}

describe('transposed matrix products on the wasm backend', () => {
  it('gives the same products as plain arithmetic for every transpose combination, batched too', async () => {
    const { tf, backend } = await loadTf();
    if (backend !== 'wasm') return expect(registerTransposedMatMul(tf)).toBe(false);
    // Registered once by the loader: a second call changes nothing.
    expect(registerTransposedMatMul(tf)).toBe(false);
    const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7 + seed));
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      const aShape = ta ? [7, 5] : [5, 7];
      const bShape = tb ? [3, 7] : [7, 3];
      const a = values(35, 1);
      const b = values(21, 2);
      const got = tf.tidy(() => tf.matMul(tf.tensor2d(a, aShape as [number, number]), tf.tensor2d(b, bShape as [number, number]), ta, tb).dataSync());
      const want = reference(a, aShape, ta, b, bShape, tb);
      expect(got.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], 4);
    }
    // Rank 3: each batch's product on its own.
    const a3 = values(2 * 4 * 3, 3);
    const b3 = values(2 * 4 * 2, 4);
    const got3 = tf.tidy(() => tf.matMul(tf.tensor3d(a3, [2, 4, 3]), tf.tensor3d(b3, [2, 4, 2]), true, false).dataSync());
    for (let batch = 0; batch < 2; batch++) {
      const want = reference(a3.subarray(batch * 12, batch * 12 + 12), [4, 3], true, b3.subarray(batch * 8, batch * 8 + 8), [4, 2], false);
      for (let i = 0; i < want.length; i++) expect(got3[batch * 6 + i]).toBeCloseTo(want[i], 4);
    }
  });

  it('frees the transposed copies: no tensor memory is left behind', async () => {
    const { tf } = await loadTf();
    const x = tf.randomNormal([16, 8]);
    const y = tf.randomNormal([16, 4]);
    const before = tf.memory().numBytes;
    for (let i = 0; i < 5; i++) tf.matMul(x, y, true, false).dispose();
    expect(tf.memory().numBytes).toBe(before);
    tf.dispose([x, y]);
  });
});
