/**
 * uint8 HWC images → float32 NHWC in a model's input shape, for both engines.
 *
 * Hand-written rather than `tf.image.resizeBilinear` (what both engines used before):
 * the tfjs route converts every source value to float and copies it into the wasm heap
 * before resizing, which for the `none` base (224×224×3 prepared images down to 32×32×3)
 * cost ~4 ms an image for 3,072 values kept (a profile of the 500-image pipeline: 1.9 s
 * in the conversion, 1 s in the copy). Here each output value reads its four source
 * values straight from the uint8 images. The arithmetic is tfjs's ResizeBilinear with
 * `alignCorners: true` (tfjs-backend-cpu's resize_bilinear kernel), so models trained
 * before this change see the same inputs, up to float rounding (test/unit/ml/pixels.test.ts).
 * sharp resizes too, but with other kernels (its output differs by tens of levels).
 */
import type { ImageShape } from './embedder.js';
import { UserError } from '../errors.js';

/** Source and target shapes that cannot be fed to each other (channels other than 1 → 3). */
export class ChannelMismatchError extends UserError {
  override name = 'ChannelMismatchError';
  constructor(from: number, to: number) {
    super('BASE_MODEL_ERROR', `cannot feed ${from}-channel images to a ${to}-channel input`);
  }
}

/** Per output position along one axis: the two source indices and the weight of the second. */
function axis(inSize: number, outSize: number) {
  const lo = new Int32Array(outSize);
  const hi = new Int32Array(outSize);
  const w = new Float32Array(outSize);
  // alignCorners: the corners of input and output line up.
  const scale = outSize > 1 ? (inSize - 1) / (outSize - 1) : 0;
  for (let i = 0; i < outSize; i++) {
    const src = i * scale;
    lo[i] = Math.floor(src);
    hi[i] = Math.min(inSize - 1, Math.ceil(src));
    w[i] = src - lo[i];
  }
  return { lo, hi, w };
}

/** Bilinear interpolation in tfjs's order: along the row first, then between the rows. */
function lerp2(tl: number, tr: number, bl: number, br: number, wx: number, wy: number): number {
  const t = tl + (tr - tl) * wx;
  const b = bl + (br - bl) * wx;
  return t + (b - t) * wy;
}

/**
 * @param pixels n×source uint8 values
 * @param out where to write n×target values (a caller reusing one buffer across batches
 *   avoids zero-filling fresh memory for every batch, which dominated the plain copy)
 * @returns n×target float32 values, 0–255 (`out` when given; a fresh array otherwise)
 * @throws ChannelMismatchError unless the channels agree or grey goes to RGB
 */
export function toFloatPixels(pixels: Uint8Array, n: number, source: ImageShape, target: ImageShape, out?: Float32Array): Float32Array {
  const [sh, sw, sc] = source;
  const [th, tw, tc] = target;
  if (sc !== tc && !(sc === 1 && tc === 3)) throw new ChannelMismatchError(sc, tc);
  const size = n * th * tw * tc;
  const y = out ? out.subarray(0, size) : new Float32Array(size);
  if (sh === th && sw === tw && sc === tc) {
    y.set(pixels.subarray(0, size));
    return y;
  }
  const rows = axis(sh, th);
  const cols = axis(sw, tw);
  // Source offsets of each output column's two taps, and of each output row's two rows.
  const left = cols.lo.map((x) => x * sc);
  const right = cols.hi.map((x) => x * sc);
  const rowLen = sw * sc;
  const per = sh * rowLen;
  let o = 0;
  for (let img = 0; img < n; img++) {
    for (let r = 0; r < th; r++) {
      const top = img * per + rows.lo[r] * rowLen;
      const bottom = img * per + rows.hi[r] * rowLen;
      const wy = rows.w[r];
      for (let c = 0; c < tw; c++) {
        const tl = top + left[c];
        const tr = top + right[c];
        const bl = bottom + left[c];
        const br = bottom + right[c];
        const wx = cols.w[c];
        if (sc === tc) {
          for (let k = 0; k < tc; k++) y[o++] = lerp2(pixels[tl + k], pixels[tr + k], pixels[bl + k], pixels[br + k], wx, wy);
        } else {
          // grey to RGB: one value, three times
          const v = lerp2(pixels[tl], pixels[tr], pixels[bl], pixels[br], wx, wy);
          y[o++] = v;
          y[o++] = v;
          y[o++] = v;
        }
      }
    }
  }
  return y;
}
