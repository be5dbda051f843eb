/**
 * Training MobileNetV2's top block on the tfjs wasm backend (with the gradient
 * kernels of shared/tf/wasm-grad-kernels.ts) against the pure-JS cpu backend.
 *
 *   node --import tsx bench/conv-grad.ts [--skip-cpu-full]
 *
 * Three figures per backend, each a training step on 8 images:
 * - `fullStep`: the whole 224×224 model with only block_16 and later trainable,
 *   so the frozen forward pass runs every step;
 * - `topStep`: only the part from block_16's input on, fed activations computed
 *   once (how fine-tuning on cached activations runs);
 * - the gradient kernels alone at block_16's shapes.
 * Prints the backend first and writes bench/results/conv-grad.json.
 * `--skip-cpu-full` leaves out the cpu full step (over two minutes here).
 */
import { cpus, tmpdir } from 'node:os';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FsObjectStore } from '../shared/adapters/local/fs-object-store.js';
import { baseModelPrefix, resolveBase } from '../shared/ml/base-models.js';
import { loadModel } from '../shared/ml/model-io.js';
import { loadTf, type Tf } from '../shared/tf/loader.js';
import { registerWasmGradKernels } from '../shared/tf/wasm-grad-kernels.js';

type LayersModel = Awaited<ReturnType<Tf['loadLayersModel']>>;
type Tensor = InstanceType<Tf['Tensor']>;
type SymbolicTensor = InstanceType<Tf['SymbolicTensor']>;

const here = path.dirname(fileURLToPath(import.meta.url));
const BATCH = 8;
const FIRST_TRAINABLE = 'block_16_expand';
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const log = (line: string) => process.stderr.write(`${line}\n`);

/** Seconds per call: `warmup` untimed calls, then the median of `runs`. */
async function timeIt(fn: () => Promise<void> | void, runs: number, warmup = 1): Promise<{ seconds: number; runs: number[] }> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return { seconds: round(median(times)), runs: times.map((t) => round(t)) };
}

/**
 * The layers from `first` to the output as a model of their own. MobileNetV2's
 * last block has no residual branch, so from block_16 on the graph is a chain
 * and the same layer objects (same weights) can be re-applied to a new input.
 */
function topModel(tf: Tf, full: LayersModel, first: string): LayersModel {
  const start = full.layers.findIndex((l) => l.name === first);
  if (start < 0) throw new Error(`no layer ${first}`);
  const input = tf.input({ shape: (full.layers[start].input as SymbolicTensor).shape.slice(1) });
  let x: SymbolicTensor = input;
  let prev = full.layers[start - 1].name;
  for (const layer of full.layers.slice(start)) {
    const inbound = layer.inboundNodes.flatMap((n) => n.inboundLayers.map((l) => l.name));
    if (inbound.length !== 1 || inbound[0] !== prev) throw new Error(`${layer.name} is not a link of a chain (inputs: ${inbound.join(', ')})`);
    x = layer.apply(x) as SymbolicTensor;
    prev = layer.name;
  }
  return tf.model({ inputs: input, outputs: x });
}

function freezeBefore(model: LayersModel, first: string): number {
  let trainable = false;
  for (const layer of model.layers) {
    if (layer.name === first) trainable = true;
    layer.trainable = trainable;
  }
  return model.trainableWeights.reduce((n, w) => n + w.shape.reduce<number>((a, b) => a * (b ?? 1), 1), 0);
}

interface BackendFigures {
  backend: string;
  forward8Seconds?: number;
  fullStep8Seconds?: number;
  fullStepRuns?: number[];
  topStep8Seconds: number;
  topStepRuns: number[];
  activationsSeconds: number;
  kernels: Record<string, number>;
}

interface BackendPlan {
  /** Time the whole-model step (minutes on cpu). */
  full: boolean;
  runs: number;
  topRuns: number;
  /** Untimed calls first; 0 on cpu, where one call takes up to minutes and warm-up is noise. */
  warmup: number;
  /** The Conv2DBackpropInput that tfjs-backend-wasm ships, timed next to its replacement. */
  shippedInputKernel?: { kernelFunc: (args: { inputs: object; backend: object; attrs: object }) => unknown };
}

/** Gradient kernels timed one by one, at the shapes of MobileNetV2's top blocks. */
function gradientKernelCases(tf: Tf, shipped: BackendPlan['shippedInputKernel']): Array<[string, () => Tensor]> {
  const r = (shape: number[], seed: number) => tf.randomUniform(shape, -1, 1, 'float32', seed);
  const cases: Array<[string, () => Tensor]> = [
    [
      'Conv2DBackpropFilter 1x1 160->960',
      () =>
        tf
          .engine()
          .runKernel<Tensor>(
            'Conv2DBackpropFilter',
            { x: r([8, 7, 7, 160], 1), dy: r([8, 7, 7, 960], 2) },
            { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [1, 1, 160, 960] },
          ),
    ],
    [
      'Conv2DBackpropFilter 1x1 320->1280',
      () =>
        tf
          .engine()
          .runKernel<Tensor>(
            'Conv2DBackpropFilter',
            { x: r([8, 7, 7, 320], 3), dy: r([8, 7, 7, 1280], 4) },
            { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [1, 1, 320, 1280] },
          ),
    ],
    [
      'Conv2DBackpropInput 1x1 1280->320',
      () =>
        tf
          .engine()
          .runKernel<Tensor>(
            'Conv2DBackpropInput',
            { dy: r([8, 7, 7, 1280], 11), filter: r([1, 1, 320, 1280], 12) },
            { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [8, 7, 7, 320] },
          ),
    ],
    [
      'DepthwiseConv2dNativeBackpropFilter 3x3 960',
      () =>
        tf
          .engine()
          .runKernel<Tensor>(
            'DepthwiseConv2dNativeBackpropFilter',
            { x: r([8, 7, 7, 960], 5), dy: r([8, 7, 7, 960], 6) },
            { strides: 1, pad: 'same', dilations: 1, filterShape: [3, 3, 960, 1] },
          ),
    ],
    [
      'DepthwiseConv2dNativeBackpropInput 3x3 960',
      () =>
        tf
          .engine()
          .runKernel<Tensor>(
            'DepthwiseConv2dNativeBackpropInput',
            { dy: r([8, 7, 7, 960], 7), filter: r([3, 3, 960, 1], 8) },
            { strides: 1, pad: 'same', dilations: 1, inputShape: [8, 7, 7, 960] },
          ),
    ],
    [
      'Conv2DBackpropFilter 3x3 s2 32->32 at 56x56',
      () =>
        tf
          .engine()
          .runKernel<Tensor>(
            'Conv2DBackpropFilter',
            { x: r([8, 56, 56, 32], 9), dy: r([8, 28, 28, 32], 10) },
            { strides: 2, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 32, 32] },
          ),
    ],
  ];
  if (shipped) {
    cases.push([
      'Conv2DBackpropInput 1x1 1280->320, shipped wasm kernel',
      () => {
        const info = shipped.kernelFunc({
          inputs: { dy: r([8, 7, 7, 1280], 11), filter: r([1, 1, 320, 1280], 12) },
          backend: tf.backend(),
          attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [8, 7, 7, 320] },
        });
        return tf.engine().makeTensorFromTensorInfo(info as never);
      },
    ]);
  }
  return cases;
}

async function benchBackend(tf: Tf, backend: 'wasm' | 'cpu', store: FsObjectStore, opts: BackendPlan): Promise<BackendFigures> {
  await tf.setBackend(backend);
  log(`-- backend ${tf.getBackend()}`);
  const model = await loadModel(store, baseModelPrefix('mobilenet_v2'));
  const classes = (model.outputs[0].shape as number[])[1];
  const trainableParams = freezeBefore(model, FIRST_TRAINABLE);
  const x = tf.randomUniform([BATCH, 224, 224, 3], 0, 1, 'float32', 7);
  const y = tf.oneHot(
    tf.tensor1d(
      [0, 1, 2, 3, 4, 0, 1, 2].map((c) => c % classes),
      'int32',
    ),
    classes,
  );
  const out: Partial<BackendFigures> = { backend: tf.getBackend(), kernels: {} };
  log(`trainable parameters from ${FIRST_TRAINABLE} on: ${trainableParams}`);

  if (opts.full) {
    const fwd = await timeIt(() => tf.tidy(() => void (model.predict(x) as Tensor).dataSync()), opts.runs, opts.warmup);
    out.forward8Seconds = fwd.seconds;
    log(`forward of ${BATCH} images: ${fwd.seconds} s`);
  }
  if (opts.full) {
    model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
    const step = await timeIt(async () => void (await model.trainOnBatch(x, y)), opts.runs, opts.warmup);
    out.fullStep8Seconds = step.seconds;
    out.fullStepRuns = step.runs;
    log(`full top-block step: ${step.seconds} s (${step.runs.join(', ')})`);
  }

  // Activations at the cut, computed once as a cache would hold them.
  const cutInput = model.getLayer(FIRST_TRAINABLE).input as SymbolicTensor;
  const cut = tf.model({ inputs: model.inputs, outputs: cutInput });
  const t0 = performance.now();
  const acts = tf.tidy(() => cut.predict(x) as Tensor);
  acts.dataSync();
  out.activationsSeconds = round((performance.now() - t0) / 1000);
  const top = topModel(tf, model, FIRST_TRAINABLE);
  top.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  const topStep = await timeIt(async () => void (await top.trainOnBatch(acts, y)), opts.topRuns, opts.warmup);
  out.topStep8Seconds = topStep.seconds;
  out.topStepRuns = topStep.runs;
  log(`top step on cached activations ${JSON.stringify(acts.shape)}: ${topStep.seconds} s`);

  // The gradient kernels alone, at block_16 / Conv_1 shapes (batch 8, 7×7).
  const cases = gradientKernelCases(tf, opts.shippedInputKernel);
  for (const [name, run] of cases) {
    const t = await timeIt(() => tf.tidy(() => void run().dataSync()), opts.runs, opts.warmup);
    out.kernels![name] = t.seconds;
    log(`${name}: ${t.seconds} s`);
  }

  tf.dispose([x, y, acts]);
  model.dispose();
  return out as BackendFigures;
}

async function main(): Promise<void> {
  const skipCpuFull = process.argv.includes('--skip-cpu-full');
  const { tf, packageName, backend } = await loadTf();
  const shippedInputKernel = tf.getKernel('Conv2DBackpropInput', 'wasm') as BackendPlan['shippedInputKernel'];
  const registered = registerWasmGradKernels(tf);
  // Benchmarks print their backend first (DESIGN: runtime for TensorFlow.js).
  console.log(`backend: ${backend} (${packageName}); wasm gradient kernels registered: ${registered.join(', ') || 'none needed'}`);
  if (backend !== 'wasm') throw new Error('this benchmark compares the wasm backend with cpu; run it without tfjs-node (TL_TF_BACKEND=wasm)');
  const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
  const threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');

  const dir = await mkdtemp(path.join(tmpdir(), 'tl-conv-grad-'));
  try {
    const store = new FsObjectStore({ root: dir });
    await resolveBase(store, 'mobilenet_v2');
    const wasm = await benchBackend(tf, 'wasm', store, { full: true, runs: 5, topRuns: 15, warmup: 1, shippedInputKernel });
    const cpu = await benchBackend(tf, 'cpu', store, { full: !skipCpuFull, runs: 1, topRuns: 1, warmup: 0 });
    await tf.setBackend('wasm');
    const ratio = (a?: number, b?: number) => (a && b ? round(b / a, 1) : undefined);
    const result = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
      tfjs: { packageName, simd, threads },
      batch: BATCH,
      firstTrainableLayer: FIRST_TRAINABLE,
      registeredKernels: registered,
      wasm,
      cpu,
      speedup: {
        fullStep: ratio(wasm.fullStep8Seconds, cpu.fullStep8Seconds),
        topStep: ratio(wasm.topStep8Seconds, cpu.topStep8Seconds),
        kernels: Object.fromEntries(Object.keys(wasm.kernels).map((k) => [k, ratio(wasm.kernels[k], cpu.kernels[k])])),
      },
      notes: [
        'fullStep: trainOnBatch of 8 224x224 images through the whole model, layers before block_16_expand frozen (their forward still runs every step).',
        'topStep: trainOnBatch of the layers from block_16_expand on, fed 8 cached 7x7x160 activations.',
        'speedup = cpu seconds / wasm seconds. wasm figures are medians of 5 runs (15 for topStep) after a warm-up; cpu figures are single runs (3 for topStep) without warm-up, because one cpu step takes minutes.',
        'tfjs-layers runs BatchNormalization with batch statistics during fit even when the layer is frozen, and updates its moving averages: fullStep pays for that in the frozen part (Mean, FusedBatchNorm, Tile dominate its profile), topStep on activations from predict() does not.',
      ],
    };
    console.log(JSON.stringify(result, null, 2));
    await mkdir(path.join(here, 'results'), { recursive: true });
    await writeFile(path.join(here, 'results', 'conv-grad.json'), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
