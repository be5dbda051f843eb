import { describe, expect, it } from 'vitest';
import { loadTf } from '../../../shared/tf/loader.js';
import { ChannelMismatchError, toFloatPixels } from '../../../shared/ml/pixels.js';
import type { ImageShape } from '../../../shared/ml/embedder.js';

/** Deterministic, uneven pixels (a smooth ramp would hide an off-by-one in the taps). */
function pixels(n: number, [h, w, c]: ImageShape): Uint8Array {
  const p = new Uint8Array(n * h * w * c);
  let s = 7;
  for (let i = 0; i < p.length; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    p[i] = s >>> 23;
  }
  return p;
}

/** What both engines fed their models before: tfjs's own bilinear resize, align corners. */
async function tfResize(p: Uint8Array, n: number, source: ImageShape, target: ImageShape): Promise<Float32Array> {
  const { tf } = await loadTf();
  const y = tf.tidy(() => {
    let x = tf.tensor4d(Float32Array.from(p), [n, ...source]);
    if (source[2] === 1 && target[2] === 3) x = tf.tile(x, [1, 1, 1, 3]);
    return tf.image.resizeBilinear(x, [target[0], target[1]], true);
  });
  const out = (await y.data()) as Float32Array;
  y.dispose();
  return out;
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe('toFloatPixels', () => {
  it.each([
    ['down, RGB (the none base: 224×224 prepared images to 32×32)', [224, 224, 3], [32, 32, 3]],
    ['up, grey to RGB (Fashion-MNIST to MobileNet)', [28, 28, 1], [224, 224, 3]],
    ['uneven, non-square', [37, 50, 3], [19, 64, 3]],
    ['to one row and column', [9, 7, 3], [1, 1, 3]],
  ] as [string, ImageShape, ImageShape][])('matches tfjs resizeBilinear (align corners): %s', async (_name, source, target) => {
    // Arrange
    const p = pixels(3, source);

    // Act
    const ours = toFloatPixels(p, 3, source, target);

    // Assess: the wasm kernel works in float32, this in float64; measured at most 0.003
    // of 255 levels apart (224→32), i.e. 1e-5 after the models' scaling to [0, 1]
    const theirs = await tfResize(p, 3, source, target);
    expect(ours.length).toBe(theirs.length);
    expect(maxAbsDiff(ours, theirs)).toBeLessThan(0.01);
  });

  it('copies images already in the target shape, into a reused buffer when given one', () => {
    // Arrange
    const p = pixels(2, [4, 4, 3]);
    const buffer = new Float32Array(3 * 48).fill(-1);

    // Act
    const y = toFloatPixels(p, 2, [4, 4, 3], [4, 4, 3], buffer);

    // Assess
    expect(y.buffer).toBe(buffer.buffer);
    expect(Array.from(y)).toEqual(Array.from(p));
    expect(buffer[96]).toBe(-1);
  });

  it('refuses channels it cannot map, naming both', () => {
    expect(() => toFloatPixels(new Uint8Array(16 * 3), 1, [4, 4, 3], [4, 4, 1])).toThrow(ChannelMismatchError);
    expect(() => toFloatPixels(new Uint8Array(16 * 3), 1, [4, 4, 3], [4, 4, 1])).toThrow('cannot feed 3-channel images to a 1-channel input');
  });
});
