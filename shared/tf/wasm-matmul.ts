/**
 * Transposed matrix products on the tfjs WebAssembly backend, at the speed of plain ones.
 *
 * tfjs-backend-wasm 4.22's BatchMatMul is fast (XNNPACK) for `a · b` but takes a slow
 * path when asked for `aᵀ · b` or `a · bᵀ`, which is what every dense layer's gradient
 * asks for (dW = xᵀ · dy, dx = dy · Wᵀ). Measured on this project's 2-core machine
 * (scratch timing, median of 50): at x 32×3072, dy 32×128, W 3072×128,
 * `matMul(x, dy, transposeA)` 50.3 ms against 2.1 ms for transposing x first and
 * multiplying; `matMul(dy, W, transposeB)` 11.9 ms against 6.7 ms. A dense network on
 * 32×32×3 pixels trained at 565 ms an epoch (350 records), almost all of it there.
 *
 * So the backend's BatchMatMul is wrapped: a transposed operand is first transposed
 * by the backend's own Transpose kernel (a copy), then the plain product runs. The
 * result is the same product; only the time changes (test/unit/tf/wasm-matmul.test.ts).
 */
import type { Tf } from './loader.js';

type TensorInfo = { dataId: object; shape: number[]; dtype: string };
interface KernelArgs {
  inputs: Record<string, TensorInfo>;
  backend: { disposeData(dataId: object, force?: boolean): boolean };
  attrs?: Record<string, unknown>;
}
type KernelFunc = (args: KernelArgs) => TensorInfo;

const OURS = Symbol('tl-transposed-matmul');

/** Swaps the last two axes. */
const swapLast = (rank: number) => [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];

/**
 * Replaces the wasm backend's BatchMatMul with the wrapper described above.
 * @returns whether it was replaced (false: no wasm BatchMatMul, or already ours)
 */
export function registerTransposedMatMul(tf: Tf): boolean {
  const shipped = tf.getKernel('BatchMatMul', 'wasm');
  const transpose = tf.getKernel('Transpose', 'wasm')?.kernelFunc as unknown as KernelFunc | undefined;
  if (!shipped || !transpose || (shipped.kernelFunc as unknown as Record<symbol, unknown>)[OURS]) return false;
  const original = shipped.kernelFunc as unknown as KernelFunc;
  const kernelFunc: KernelFunc = (args) => {
    const { a, b } = args.inputs;
    const transposeA = Boolean(args.attrs?.transposeA);
    const transposeB = Boolean(args.attrs?.transposeB);
    if (!transposeA && !transposeB) return original(args);
    const flip = (x: TensorInfo) => transpose({ inputs: { x }, backend: args.backend, attrs: { perm: swapLast(x.shape.length) } });
    const a2 = transposeA ? flip(a) : a;
    const b2 = transposeB ? flip(b) : b;
    try {
      return original({ ...args, inputs: { ...args.inputs, a: a2, b: b2 }, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
    } finally {
      if (a2 !== a) args.backend.disposeData(a2.dataId);
      if (b2 !== b) args.backend.disposeData(b2.dataId);
    }
  };
  (kernelFunc as unknown as Record<symbol, unknown>)[OURS] = true;
  // Unregister first: registering over a kernel logs a warning.
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({ ...shipped, kernelFunc: kernelFunc as unknown as Parameters<Tf['registerKernel']>[0]['kernelFunc'] });
  return true;
}
