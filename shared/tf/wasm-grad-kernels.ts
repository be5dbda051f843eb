/**
 * Convolution gradient kernels for the tfjs WebAssembly backend.
 *
 * tfjs-backend-wasm 4.22 registers Conv2D, DepthwiseConv2dNative and
 * Conv2DBackpropInput, but none of `Conv2DBackpropFilter`,
 * `DepthwiseConv2dNativeBackpropFilter` or `DepthwiseConv2dNativeBackpropInput`,
 * so `fit` on any model with a trainable convolution fails there. These are
 * plain loops over the wasm heap, NHWC only, written so the innermost loop runs
 * over contiguous channels of every array it touches (the hot path of a
 * training step). Everything else a conv net needs for training (Relu6, pads,
 * pooling, batch norm, Conv2DBackpropInput) is already on the wasm backend.
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
}

/** A gradient kernel was called with something it does not implement. */
export class UnsupportedConvGradError extends Error {
  override name = 'UnsupportedConvGradError';
}

/** Names of the kernels this module provides, in registration order. */
export const WASM_GRAD_KERNEL_NAMES = [
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
] as const;

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
    throw new UnsupportedConvGradError(`${kernel}: only NHWC is supported on wasm, got dataFormat ${String(dataFormat)}`);
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
 * dW[fr, fc, ci, co] = Σ_{b, yr, yc} x[b, yr·sh + fr − top, yc·sw + fc − left, ci] · dy[b, yr, yc, co].
 * Per output pixel, a rank-1 update of each filter tap's [ci, co] slab: the inner
 * loop walks dy's and dW's channels contiguously. Zero activations (most of
 * them after a ReLU) skip their whole row.
 */
export function conv2dBackpropFilterNhwc(x: Float32Array, dy: Float32Array, dw: Float32Array, c: Conv2DInfo): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth, strideHeight, strideWidth } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const tapSize = inChannels * outChannels;
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
            let dwOff = (fr * filterWidth + fc) * tapSize;
            for (let ci = 0; ci < inChannels; ++ci, dwOff += outChannels) {
              const xv = x[xOff + ci];
              if (xv === 0) continue;
              for (let co = 0; co < outChannels; ++co) dw[dwOff + co] += xv * dy[dyOff + co];
            }
          }
        }
      }
    }
  }
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

function makeKernels(tf: Tf): Record<(typeof WASM_GRAD_KERNEL_NAMES)[number], (args: KernelArgs) => TensorInfo> {
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

  return {
    Conv2DBackpropFilter({ inputs, backend, attrs = {} }) {
      const name = 'Conv2DBackpropFilter';
      const { x, dy } = inputs;
      assertFloat(x, 'x', name);
      assertFloat(dy, 'dy', name);
      assertNhwc(attrs.dataFormat, name);
      const c = convInfo(x.shape, attrs.filterShape as number[], attrs, false);
      const be = asBackend(backend);
      const { out, outVals, ins } = heapViews(be, c.filterShape, [x, dy]);
      conv2dBackpropFilterNhwc(ins[0], ins[1], outVals, c);
      return out;
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

/**
 * Registers, for backend `wasm`, the convolution gradient kernels that
 * tfjs-backend-wasm lacks, so conv and depthwise-conv layers train there.
 * Idempotent: a kernel already registered for wasm (by an earlier call, or by a
 * later tfjs that ships its own) is left alone.
 * @returns the names of the kernels this call registered.
 */
export function registerWasmGradKernels(tf: Tf): string[] {
  const kernels = makeKernels(tf);
  const added: string[] = [];
  for (const kernelName of WASM_GRAD_KERNEL_NAMES) {
    if (tf.getKernel(kernelName, 'wasm')) continue;
    tf.registerKernel({
      kernelName,
      backendName: 'wasm',
      kernelFunc: kernels[kernelName] as unknown as Parameters<Tf['registerKernel']>[0]['kernelFunc'],
    });
    added.push(kernelName);
  }
  return added;
}
