/**
 * Convolution gradient kernels for the tfjs WebAssembly backend.
 *
 * tfjs-backend-wasm 4.22 registers Conv2D, DepthwiseConv2dNative and
 * Conv2DBackpropInput, but none of `Conv2DBackpropFilter`,
 * `DepthwiseConv2dNativeBackpropFilter` or `DepthwiseConv2dNativeBackpropInput`,
 * so `fit` on any model with a trainable convolution fails there. Everything
 * else a conv net needs for training (Relu6, pads, pooling, batch norm) is on
 * the wasm backend already. NHWC only.
 *
 * Depthwise gradients are plain loops whose innermost loop runs over contiguous
 * channels: they are cheap (a few ms at MobileNetV2's block 16). Full
 * convolutions are not: at 1×1 320→1280 over 8×7×7 pixels a JS loop took
 * 0.67 s for the filter gradient, while the backend's own XNNPACK matrix
 * product does the same arithmetic in ~0.04 s. So the conv gradients are
 * written as one matrix product per filter tap, with only the gathering and
 * scattering of pixels in JS. The shipped Conv2DBackpropInput (a scalar C++
 * loop, ~0.6 s at that shape) is replaced the same way; see
 * {@link registerWasmGradKernels}.
 */
import type { Tf } from './loader.js';

type TensorInfo = { dataId: object; shape: number[]; dtype: string };
type Conv2DInfo = ReturnType<Tf['backend_util']['computeConv2DInfo']>;
type Pad = Parameters<Tf['backend_util']['computeConv2DInfo']>[4];
type RoundingMode = Parameters<Tf['backend_util']['computeConv2DInfo']>[5];

/** The part of tfjs-backend-wasm's `BackendWasm` these kernels use. */
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: object, force?: boolean): boolean;
}

type KernelFunc = (args: KernelArgs) => TensorInfo;

/** A gradient kernel was called with something it does not implement. */
export class UnsupportedConvGradError extends Error {
  override name = 'UnsupportedConvGradError';
}

/** The gradient kernels tfjs-backend-wasm 4.22 lacks, which this module provides. */
export const WASM_GRAD_KERNEL_NAMES = ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput'] as const;

type WasmGradKernelName = (typeof WASM_GRAD_KERNEL_NAMES)[number] | 'Conv2DBackpropInput';

function asBackend(backend: unknown): WasmBackendLike {
  const b = backend as Partial<WasmBackendLike>;
  if (typeof b?.makeOutput !== 'function' || typeof b.typedArrayFromHeap !== 'function') {
    throw new UnsupportedConvGradError('wasm gradient kernels need the tfjs wasm backend (makeOutput / typedArrayFromHeap)');
  }
  return b as WasmBackendLike;
}

function assertFloat(t: TensorInfo, what: string, kernel: string): void {
  if (t.dtype !== 'float32') throw new UnsupportedConvGradError(`${kernel}: ${what} must be float32, got ${t.dtype}`);
}

function assertNhwc(dataFormat: unknown, kernel: string): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC') {
    throw new UnsupportedConvGradError(`${kernel}: only NHWC is supported on wasm, got dataFormat ${JSON.stringify(dataFormat)}`);
  }
}

function assertNoDilation(dilations: unknown, kernel: string): void {
  const d = dilations == null ? [1, 1] : typeof dilations === 'number' ? [dilations, dilations] : (dilations as number[]);
  if (d.some((v) => v !== 1)) {
    throw new UnsupportedConvGradError(`${kernel}: dilations must be 1 on wasm, got ${JSON.stringify(dilations)}`);
  }
}

/**
 * Allocates the output first, then views the inputs: an allocation may grow the
 * wasm memory, which detaches every view taken before it.
 */
function heapViews(backend: WasmBackendLike, outShape: number[], inputs: TensorInfo[]): { out: TensorInfo; outVals: Float32Array; ins: Float32Array[] } {
  const out = backend.makeOutput(outShape, 'float32');
  const outVals = backend.typedArrayFromHeap(out) as Float32Array;
  // malloc'd memory is not cleared and every kernel here accumulates.
  outVals.fill(0);
  const ins = inputs.map((t) => backend.typedArrayFromHeap(t) as Float32Array);
  return { out, outVals, ins };
}

/**
 * A view of a tensor on the wasm heap. Take it again after every allocation
 * (makeOutput, a kernel call): growing the memory detaches older views.
 */
const heap = (backend: WasmBackendLike, t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;

/**
 * out[1, M, N] = a[1, M, K] · b[1, K, N] by the backend's BatchMatMul, which runs
 * XNNPACK only without transposes. XNNPACK packs `b` once and caches the packed
 * copy under b's tensor id (not its contents or shape), so `b` must be a fresh
 * scratch tensor that the caller disposes (disposal drops the cached copy).
 */
function matMul(matMulKernel: KernelFunc, backend: WasmBackendLike, a: TensorInfo, b: TensorInfo): TensorInfo {
  return matMulKernel({ inputs: { a, b }, backend, attrs: { transposeA: false, transposeB: false } });
}

/** Is every tap of this conv a plain matrix product over the same pixels? */
const isPointwise = (c: Conv2DInfo) =>
  c.filterHeight === 1 && c.filterWidth === 1 && c.strideHeight === 1 && c.strideWidth === 1 && c.padInfo.top === 0 && c.padInfo.left === 0;

/**
 * dW[fr, fc, :, :] = Xᵀ_tap · dY, where X_tap[p, ci] = x[b, yr·sh + fr − top, yc·sw + fc − left, ci]
 * (zero outside the image) for each output pixel p = (b, yr, yc).
 */
function conv2dBackpropFilterByTaps(matMulKernel: KernelFunc, be: WasmBackendLike, x: TensorInfo, dy: TensorInfo, c: Conv2DInfo): TensorInfo {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth, strideHeight, strideWidth } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const n = batchSize * outHeight * outWidth;
  // dY goes in as XNNPACK's packed operand, so it must be a scratch copy (see matMul).
  const dyCopy = be.makeOutput([1, n, outChannels], 'float32');
  heap(be, dyCopy).set(heap(be, dy));
  const xT = be.makeOutput([1, inChannels, n], 'float32');
  const pointwise = isPointwise(c);
  const out = pointwise ? undefined : be.makeOutput(c.filterShape, 'float32');
  const tapSize = inChannels * outChannels;
  try {
    for (let fr = 0; fr < filterHeight; ++fr) {
      for (let fc = 0; fc < filterWidth; ++fc) {
        const xv = heap(be, x);
        const av = heap(be, xT);
        let p = 0;
        for (let b = 0; b < batchSize; ++b) {
          for (let yr = 0; yr < outHeight; ++yr) {
            const xr = yr * strideHeight - top + fr;
            for (let yc = 0; yc < outWidth; ++yc, ++p) {
              const xc = yc * strideWidth - left + fc;
              if (xr < 0 || xr >= inHeight || xc < 0 || xc >= inWidth) {
                for (let ci = 0, o = p; ci < inChannels; ++ci, o += n) av[o] = 0;
              } else {
                const xOff = ((b * inHeight + xr) * inWidth + xc) * inChannels;
                for (let ci = 0, o = p; ci < inChannels; ++ci, o += n) av[o] = xv[xOff + ci];
              }
            }
          }
        }
        const prod = matMul(matMulKernel, be, xT, dyCopy);
        // A 1×1 stride-1 unpadded conv has one tap: its product is the answer.
        if (!out) return { dataId: prod.dataId, shape: c.filterShape, dtype: 'float32' };
        heap(be, out).set(heap(be, prod), (fr * filterWidth + fc) * tapSize);
        be.disposeData(prod.dataId);
      }
    }
    return out!;
  } finally {
    be.disposeData(xT.dataId);
    be.disposeData(dyCopy.dataId);
  }
}

/**
 * dX[b, yr·sh + fr − top, yc·sw + fc − left, :] += (dY · W_tapᵀ)[p, :] for each tap
 * and output pixel p = (b, yr, yc) that lands inside the image.
 */
function conv2dBackpropInputByTaps(matMulKernel: KernelFunc, be: WasmBackendLike, dy: TensorInfo, w: TensorInfo, c: Conv2DInfo): TensorInfo {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth, strideHeight, strideWidth } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const n = batchSize * outHeight * outWidth;
  const pointwise = isPointwise(c);
  const dx = pointwise ? undefined : be.makeOutput(c.inShape, 'float32');
  if (dx) heap(be, dx).fill(0);
  // dY is the left operand, which XNNPACK reads as is: a reshaped alias will do.
  const dy2d: TensorInfo = { dataId: dy.dataId, shape: [1, n, outChannels], dtype: 'float32' };
  const tapSize = inChannels * outChannels;
  for (let fr = 0; fr < filterHeight; ++fr) {
    for (let fc = 0; fc < filterWidth; ++fc) {
      // W_tapᵀ as a fresh tensor per tap: XNNPACK caches the packed operand by tensor id.
      const wT = be.makeOutput([1, outChannels, inChannels], 'float32');
      const wv = heap(be, w);
      const bv = heap(be, wT);
      const tap = (fr * filterWidth + fc) * tapSize;
      for (let ci = 0; ci < inChannels; ++ci) {
        for (let co = 0, o = ci; co < outChannels; ++co, o += inChannels) bv[o] = wv[tap + ci * outChannels + co];
      }
      const prod = matMul(matMulKernel, be, dy2d, wT);
      be.disposeData(wT.dataId);
      if (!dx) return { dataId: prod.dataId, shape: c.inShape, dtype: 'float32' };
      const pv = heap(be, prod);
      const dxv = heap(be, dx);
      let p = 0;
      for (let b = 0; b < batchSize; ++b) {
        for (let yr = 0; yr < outHeight; ++yr) {
          const xr = yr * strideHeight - top + fr;
          for (let yc = 0; yc < outWidth; ++yc, ++p) {
            const xc = yc * strideWidth - left + fc;
            if (xr < 0 || xr >= inHeight || xc < 0 || xc >= inWidth) continue;
            const xOff = ((b * inHeight + xr) * inWidth + xc) * inChannels;
            const pOff = p * inChannels;
            for (let ci = 0; ci < inChannels; ++ci) dxv[xOff + ci] += pv[pOff + ci];
          }
        }
      }
      be.disposeData(prod.dataId);
    }
  }
  return dx!;
}

/**
 * dW[fr, fc, ci, q] = Σ_{b, yr, yc} x[b, xr, xc, ci] · dy[b, yr, yc, ci·m + q], m the depth multiplier.
 */
export function depthwiseBackpropFilterNhwc(x: Float32Array, dy: Float32Array, dw: Float32Array, c: Conv2DInfo): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth, strideHeight, strideWidth } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const m = outChannels / inChannels;
  for (let b = 0; b < batchSize; ++b) {
    for (let yr = 0; yr < outHeight; ++yr) {
      const xr0 = yr * strideHeight - top;
      for (let yc = 0; yc < outWidth; ++yc) {
        const xc0 = yc * strideWidth - left;
        const dyOff = ((b * outHeight + yr) * outWidth + yc) * outChannels;
        for (let fr = 0; fr < filterHeight; ++fr) {
          const xr = xr0 + fr;
          if (xr < 0 || xr >= inHeight) continue;
          for (let fc = 0; fc < filterWidth; ++fc) {
            const xc = xc0 + fc;
            if (xc < 0 || xc >= inWidth) continue;
            const xOff = ((b * inHeight + xr) * inWidth + xc) * inChannels;
            // The filter tap [ci, q] is laid out like dy's channels [ci·m + q].
            const dwOff = (fr * filterWidth + fc) * outChannels;
            if (m === 1) {
              for (let ch = 0; ch < inChannels; ++ch) dw[dwOff + ch] += x[xOff + ch] * dy[dyOff + ch];
            } else {
              for (let ci = 0; ci < inChannels; ++ci) {
                const xv = x[xOff + ci];
                const o = ci * m;
                for (let q = 0; q < m; ++q) dw[dwOff + o + q] += xv * dy[dyOff + o + q];
              }
            }
          }
        }
      }
    }
  }
}

/**
 * Same loop nest as depthwiseBackpropFilterNhwc on purpose: sharing it through a
 * per-tap callback measured 35% slower (12.7 vs 9.4 ms at 8×7×7×960) on this hot path.
 *
 * dx[b, xr, xc, ci] = Σ over taps and output pixels that read it of W[fr, fc, ci, q] · dy[b, yr, yc, ci·m + q],
 * scattered from each output pixel so every loop reads channels in order.
 */
export function depthwiseBackpropInputNhwc(dy: Float32Array, w: Float32Array, dx: Float32Array, c: Conv2DInfo): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth, strideHeight, strideWidth } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const m = outChannels / inChannels;
  for (let b = 0; b < batchSize; ++b) {
    for (let yr = 0; yr < outHeight; ++yr) {
      const xr0 = yr * strideHeight - top;
      for (let yc = 0; yc < outWidth; ++yc) {
        const xc0 = yc * strideWidth - left;
        const dyOff = ((b * outHeight + yr) * outWidth + yc) * outChannels;
        for (let fr = 0; fr < filterHeight; ++fr) {
          const xr = xr0 + fr;
          if (xr < 0 || xr >= inHeight) continue;
          for (let fc = 0; fc < filterWidth; ++fc) {
            const xc = xc0 + fc;
            if (xc < 0 || xc >= inWidth) continue;
            const dxOff = ((b * inHeight + xr) * inWidth + xc) * inChannels;
            const wOff = (fr * filterWidth + fc) * outChannels;
            if (m === 1) {
              for (let ch = 0; ch < inChannels; ++ch) dx[dxOff + ch] += w[wOff + ch] * dy[dyOff + ch];
            } else {
              for (let ci = 0; ci < inChannels; ++ci) {
                const o = ci * m;
                let s = 0;
                for (let q = 0; q < m; ++q) s += w[wOff + o + q] * dy[dyOff + o + q];
                dx[dxOff + ci] += s;
              }
            }
          }
        }
      }
    }
  }
}

interface KernelArgs {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs?: Record<string, unknown>;
}

/** Marks kernel functions from this module, so registering twice is a no-op. */
const OURS = Symbol.for('transfer-learning-platform/wasm-grad-kernel');

function makeKernels(tf: Tf, originalConv2DBackpropInput: KernelFunc | undefined): Record<WasmGradKernelName, KernelFunc> {
  const convInfo = (xShape: number[], filterShape: number[], attrs: Record<string, unknown>, depthwise: boolean): Conv2DInfo =>
    tf.backend_util.computeConv2DInfo(
      xShape as [number, number, number, number],
      filterShape as [number, number, number, number],
      attrs.strides as [number, number] | number,
      1,
      attrs.pad as Pad,
      attrs.dimRoundingMode as RoundingMode,
      depthwise,
      'channelsLast',
    );
  // Looked up per call: the backend registers its kernels when it loads, maybe after us.
  const matMulKernel = (): KernelFunc => {
    const k = tf.getKernel('BatchMatMul', 'wasm');
    if (!k) throw new UnsupportedConvGradError('the wasm backend has no BatchMatMul kernel');
    return k.kernelFunc as unknown as KernelFunc;
  };

  return {
    Conv2DBackpropFilter({ inputs, backend, attrs = {} }) {
      const name = 'Conv2DBackpropFilter';
      const { x, dy } = inputs;
      assertFloat(x, 'x', name);
      assertFloat(dy, 'dy', name);
      assertNhwc(attrs.dataFormat, name);
      const c = convInfo(x.shape, attrs.filterShape as number[], attrs, false);
      return conv2dBackpropFilterByTaps(matMulKernel(), asBackend(backend), x, dy, c);
    },
    Conv2DBackpropInput(args) {
      const { inputs, backend, attrs = {} } = args;
      const { dy, filter } = inputs;
      // Anything this path does not cover goes to the kernel the backend shipped.
      if (
        originalConv2DBackpropInput &&
        ((attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') || dy.dtype !== 'float32' || filter.dtype !== 'float32')
      ) {
        return originalConv2DBackpropInput(args);
      }
      const name = 'Conv2DBackpropInput';
      assertFloat(dy, 'dy', name);
      assertFloat(filter, 'filter', name);
      assertNhwc(attrs.dataFormat, name);
      const c = convInfo(attrs.inputShape as number[], filter.shape, attrs, false);
      return conv2dBackpropInputByTaps(matMulKernel(), asBackend(backend), dy, filter, c);
    },
    DepthwiseConv2dNativeBackpropFilter({ inputs, backend, attrs = {} }) {
      const name = 'DepthwiseConv2dNativeBackpropFilter';
      const { x, dy } = inputs;
      assertFloat(x, 'x', name);
      assertFloat(dy, 'dy', name);
      assertNoDilation(attrs.dilations, name);
      const c = convInfo(x.shape, attrs.filterShape as number[], attrs, true);
      const be = asBackend(backend);
      const { out, outVals, ins } = heapViews(be, c.filterShape, [x, dy]);
      depthwiseBackpropFilterNhwc(ins[0], ins[1], outVals, c);
      return out;
    },
    DepthwiseConv2dNativeBackpropInput({ inputs, backend, attrs = {} }) {
      const name = 'DepthwiseConv2dNativeBackpropInput';
      const { dy, filter } = inputs;
      assertFloat(dy, 'dy', name);
      assertFloat(filter, 'filter', name);
      assertNoDilation(attrs.dilations, name);
      const c = convInfo(attrs.inputShape as number[], filter.shape, attrs, true);
      const be = asBackend(backend);
      const { out, outVals, ins } = heapViews(be, c.inShape, [dy, filter]);
      depthwiseBackpropInputNhwc(ins[0], ins[1], outVals, c);
      return out;
    },
  };
}

export interface RegisterWasmGradKernelsOptions {
  /**
   * Also replace the wasm backend's own Conv2DBackpropInput (a scalar C++ loop)
   * with the XNNPACK matrix-product version: same results, ~10× faster at
   * MobileNetV2's 1×1 convolutions. NCHW calls still go to the original.
   * @default true
   */
  replaceConv2DBackpropInput?: boolean;
}

const isOurs = (f: unknown) => typeof f === 'function' && (f as unknown as Record<symbol, unknown>)[OURS] === true;

/**
 * Registers, for backend `wasm`, the convolution gradient kernels that
 * tfjs-backend-wasm lacks (Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter,
 * DepthwiseConv2dNativeBackpropInput), so conv and depthwise-conv layers train
 * there, and by default a faster Conv2DBackpropInput.
 * Idempotent: a kernel registered by an earlier call is left alone, and so is a
 * missing kernel that a later tfjs ships itself.
 * @returns the names of the kernels this call registered.
 */
export function registerWasmGradKernels(tf: Tf, opts: RegisterWasmGradKernelsOptions = {}): string[] {
  const replaceInput = opts.replaceConv2DBackpropInput ?? true;
  const shippedInput = tf.getKernel('Conv2DBackpropInput', 'wasm');
  const original = shippedInput && !isOurs(shippedInput.kernelFunc) ? (shippedInput.kernelFunc as unknown as KernelFunc) : undefined;
  const kernels = makeKernels(tf, original);
  const added: string[] = [];
  const register = (kernelName: WasmGradKernelName) => {
    const kernelFunc = kernels[kernelName];
    (kernelFunc as unknown as Record<symbol, unknown>)[OURS] = true;
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as Parameters<Tf['registerKernel']>[0]['kernelFunc'] });
    added.push(kernelName);
  };
  for (const kernelName of WASM_GRAD_KERNEL_NAMES) {
    if (!tf.getKernel(kernelName, 'wasm')) register(kernelName);
  }
  if (replaceInput && original) {
    // Unregister first: registering over a kernel logs a warning.
    tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
    register('Conv2DBackpropInput');
  }
  return added;
}
