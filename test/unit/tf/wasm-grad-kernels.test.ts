import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadTf, type Tf } from '../../../shared/tf/loader.js';
import { registerWasmGradKernels, WASM_GRAD_KERNEL_NAMES } from '../../../shared/tf/wasm-grad-kernels.js';

type Tensor = InstanceType<Tf['Tensor']>;
type Tensor4D = ReturnType<Tf['tensor4d']>;
type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

/** Seeded so a failure reproduces; values in [-1, 1), a fifth of them zero like ReLU outputs. */
function randomValues(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const u = (s >>> 0) / 2 ** 32;
    out[i] = u < 0.2 ? 0 : u * 2 - 1;
  }
  return out;
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Largest |a − b| relative to the largest |b| (element-wise relative error blows up near zero). */
function relError(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < a.length; ++i) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    maxRef = Math.max(maxRef, Math.abs(b[i]));
  }
  return maxDiff / Math.max(maxRef, 1e-12);
}

interface Case {
  x: Shape4;
  kernel: [number, number];
  outChannels: number;
  strides: number | [number, number];
  pad: Pad;
}

// Odd and even sizes so 'same' pads unevenly, strides 1 and 2 like MobileNetV2, and
// explicit pads as ZeroPadding2D + 'valid' produce.
const CASES: Case[] = [
  { x: [2, 7, 7, 3], kernel: [3, 3], outChannels: 4, strides: 1, pad: 'same' },
  { x: [2, 8, 8, 5], kernel: [3, 3], outChannels: 6, strides: 2, pad: 'same' },
  { x: [1, 9, 6, 4], kernel: [3, 3], outChannels: 3, strides: 2, pad: 'valid' },
  { x: [3, 5, 5, 6], kernel: [1, 1], outChannels: 7, strides: 1, pad: 'valid' },
  { x: [2, 6, 7, 2], kernel: [2, 3], outChannels: 5, strides: [2, 1], pad: 'same' },
  // A numeric pad only with square kernels and strides: tfjs sizes the output from the
  // height alone there, and the wasm forward depthwise then writes past its output.
  { x: [2, 7, 6, 4], kernel: [3, 3], outChannels: 3, strides: 2, pad: 1 },
  {
    x: [1, 8, 8, 3],
    kernel: [3, 3],
    outChannels: 2,
    strides: 2,
    pad: [
      [0, 0],
      [0, 1],
      [1, 0],
      [0, 0],
    ],
  },
  { x: [2, 4, 4, 3], kernel: [5, 5], outChannels: 2, strides: 1, pad: 'same' },
];

describe('registerWasmGradKernels', () => {
  let tf: Tf;
  let registered: string[];
  beforeAll(async () => {
    ({ tf } = await loadTf(() => {}));
    registered = registerWasmGradKernels(tf);
  });
  afterEach(async () => {
    await tf.setBackend('wasm');
  });

  /** Runs `fn` on a backend and returns its outputs' values; no tensor outlives it. */
  async function on(backend: 'wasm' | 'cpu', fn: () => Tensor | Tensor[]): Promise<Float32Array[]> {
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const result = tf.tidy(fn);
    const list = Array.isArray(result) ? result : [result];
    const values = list.map((t) => t.dataSync() as Float32Array);
    tf.dispose(list);
    expect(tf.memory().numTensors).toBe(before);
    return values;
  }

  it('is registered by the tfjs loader on wasm; a second call adds nothing', () => {
    // Act
    const again = registerWasmGradKernels(tf);

    // Assess: loadTf registered them already, so this file's own call added nothing either.
    expect(again).toEqual([]);
    expect(registered).toEqual([]);
    for (const name of WASM_GRAD_KERNEL_NAMES) expect(tf.getKernel(name, 'wasm')).toBeDefined();
  });

  it('gives the same conv gradients when run again on new data (no stale XNNPACK operand)', async () => {
    // Prepare: two calls at one shape, the second with different values
    const xShape: Shape4 = [2, 5, 5, 4];
    const filterShape: Shape4 = [1, 1, 4, 6];
    const grads = (seed: number) => () => {
      const x = tf.tensor4d(randomValues(size(xShape), seed), xShape);
      const w = tf.tensor4d(randomValues(size(filterShape), seed + 1), filterShape);
      const loss = (a: Tensor, b: Tensor) => tf.sum(tf.square(tf.conv2d(a as Tensor4D, b as Tensor4D, 1, 'valid')));
      return tf.grads(loss)([x, w]);
    };

    // Act
    const first = await on('wasm', grads(1));
    const second = await on('wasm', grads(2));
    const secondCpu = await on('cpu', grads(2));

    // Assess
    expect(relError(second[0], secondCpu[0])).toBeLessThan(1e-4);
    expect(relError(second[1], secondCpu[1])).toBeLessThan(1e-4);
    expect(relError(first[1], second[1])).toBeGreaterThan(1e-2);
  });

  it('still serves NCHW Conv2DBackpropInput through the shipped kernel', async () => {
    // Prepare
    const run = () =>
      tf.engine().runKernel<Tensor>(
        'Conv2DBackpropInput',
        { dy: tf.tensor4d(randomValues(2 * 3 * 4 * 4, 9), [2, 3, 4, 4]), filter: tf.tensor4d(randomValues(3 * 3 * 2 * 3, 10), [3, 3, 2, 3]) },
        {
          strides: 1,
          pad: 'same',
          dataFormat: 'NCHW',
          inputShape: [2, 2, 4, 4],
        },
      );

    // Act
    const [wasm] = await on('wasm', run);
    const [cpu] = await on('cpu', run);

    // Assess
    expect(relError(wasm, cpu)).toBeLessThan(1e-4);
  });

  describe.each(CASES)('x $x, kernel $kernel, strides $strides, pad $pad', (c) => {
    const [, , , inC] = c.x;
    const seed = size(c.x) * 31 + c.kernel[0] * 7 + c.outChannels;

    it('Conv2DBackpropFilter matches the cpu backend', async () => {
      // Prepare: dy shaped like the forward conv's output
      const filterShape: Shape4 = [...c.kernel, inC, c.outChannels];
      const xv = randomValues(size(c.x), seed);
      const yShape = tf.backend_util.computeConv2DInfo(c.x, filterShape, c.strides, 1, c.pad, undefined, false, 'channelsLast').outShape;
      const dyv = randomValues(size(yShape), seed + 1);
      const run = () =>
        tf.engine().runKernel<Tensor>(
          'Conv2DBackpropFilter',
          { x: tf.tensor4d(xv, c.x), dy: tf.tensor(dyv, yShape) },
          {
            strides: c.strides,
            pad: c.pad,
            dataFormat: 'NHWC',
            filterShape,
          },
        );

      // Act
      const [wasm] = await on('wasm', run);
      const [cpu] = await on('cpu', run);

      // Assess
      expect(relError(wasm, cpu)).toBeLessThan(1e-4);
      expect(cpu.some((v) => v !== 0)).toBe(true);
    });

    it('Conv2DBackpropInput (replaced on wasm) matches the cpu backend', async () => {
      // Prepare
      const filterShape: Shape4 = [...c.kernel, inC, c.outChannels];
      const yShape = tf.backend_util.computeConv2DInfo(c.x, filterShape, c.strides, 1, c.pad, undefined, false, 'channelsLast').outShape;
      const dyv = randomValues(size(yShape), seed + 5);
      const wv = randomValues(size(filterShape), seed + 6);
      const run = () =>
        tf.engine().runKernel<Tensor>(
          'Conv2DBackpropInput',
          { dy: tf.tensor(dyv, yShape), filter: tf.tensor4d(wv, filterShape) },
          {
            strides: c.strides,
            pad: c.pad,
            dataFormat: 'NHWC',
            inputShape: c.x,
          },
        );

      // Act
      const [wasm] = await on('wasm', run);
      const [cpu] = await on('cpu', run);

      // Assess
      expect(relError(wasm, cpu)).toBeLessThan(1e-4);
    });

    it('depthwise filter and input gradients (tf.grad of depthwiseConv2d) match the cpu backend', async () => {
      // Prepare: depthwise convs run with numeric or string pads; explicit pads are conv2d-only
      if (Array.isArray(c.pad)) return;
      const filterShape: Shape4 = [...c.kernel, inC, 1];
      const xv = randomValues(size(c.x), seed + 2);
      const wv = randomValues(size(filterShape), seed + 3);
      const run = () => {
        const x = tf.tensor4d(xv, c.x);
        const w = tf.tensor4d(wv, filterShape);
        // A weighted sum makes dy non-uniform, so a transposed index would show.
        const loss = (a: Tensor, b: Tensor) => {
          const y = tf.depthwiseConv2d(a as Tensor4D, b as Tensor4D, c.strides, c.pad);
          return tf.sum(tf.mul(y, tf.tensor(randomValues(y.size, seed + 4), y.shape)));
        };
        return tf.grads(loss)([x, w]);
      };

      // Act
      const [dxWasm, dwWasm] = await on('wasm', run);
      const [dxCpu, dwCpu] = await on('cpu', run);

      // Assess
      expect(relError(dxWasm, dxCpu)).toBeLessThan(1e-4);
      expect(relError(dwWasm, dwCpu)).toBeLessThan(1e-4);
    });
  });

  it('handles a depth multiplier above 1 like the cpu backend', async () => {
    // Prepare
    const xShape: Shape4 = [2, 6, 6, 3];
    const filterShape: Shape4 = [3, 3, 3, 2];
    const run = () => {
      const x = tf.tensor4d(randomValues(size(xShape), 5), xShape);
      const w = tf.tensor4d(randomValues(size(filterShape), 6), filterShape);
      const loss = (a: Tensor, b: Tensor) => {
        const y = tf.depthwiseConv2d(a as Tensor4D, b as Tensor4D, 2, 'same');
        return tf.sum(tf.mul(y, tf.tensor(randomValues(y.size, 7), y.shape)));
      };
      return tf.grads(loss)([x, w]);
    };

    // Act
    const [dxWasm, dwWasm] = await on('wasm', run);
    const [dxCpu, dwCpu] = await on('cpu', run);

    // Assess
    expect(relError(dxWasm, dxCpu)).toBeLessThan(1e-4);
    expect(relError(dwWasm, dwCpu)).toBeLessThan(1e-4);
  });

  it('rejects NCHW and dilations with a clear error', async () => {
    // Prepare
    await tf.setBackend('wasm');
    const x = tf.zeros([1, 4, 4, 2]);
    const dy = tf.zeros([1, 4, 4, 2]);

    // Act / Assess
    expect(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 2, 2] })).toThrow(
      /only NHWC/,
    );
    expect(() =>
      tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { strides: 1, pad: 'same', dilations: [2, 2], filterShape: [3, 3, 2, 1] }),
    ).toThrow(/dilations must be 1/);
    tf.dispose([x, dy]);
  });

  it('lets a tiny CNN (conv2d + depthwiseConv2d + dense) fit on wasm, loss going down', async () => {
    // Prepare: two classes told apart by where a bright square sits, which needs the convs
    await tf.setBackend('wasm');
    const n = 32;
    const images = new Float32Array(n * 12 * 12);
    const labels: number[] = [];
    for (let i = 0; i < n; ++i) {
      const cls = i % 2;
      const r0 = cls === 0 ? 1 : 7;
      const c0 = 1 + (i % 5);
      for (let r = r0; r < r0 + 4; ++r) for (let col = c0; col < c0 + 4; ++col) images[i * 144 + r * 12 + col] = 1;
      labels.push(cls);
    }
    const xs = tf.tensor4d(images, [n, 12, 12, 1]);
    const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), 2);
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [12, 12, 1], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', seed: 1 } as never),
        tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', seed: 2 } as never),
        tf.layers.flatten(),
        tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.02), loss: 'categoricalCrossentropy' });
    const convWeightsBefore = model.layers[0].getWeights()[0].dataSync().slice();

    // Act
    const history = await model.fit(xs, ys, { epochs: 15, batchSize: 8, shuffle: false, verbose: 0 });

    // Assess: loss falls and the conv kernels themselves moved
    const losses = history.history.loss as number[];
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] * 0.5);
    const convWeightsAfter = model.layers[0].getWeights()[0].dataSync();
    expect(convWeightsAfter.some((v, i) => Math.abs(v - convWeightsBefore[i]) > 1e-4)).toBe(true);
    model.dispose();
    tf.dispose([xs, ys]);
  });
});
