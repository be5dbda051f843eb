import { describe, expect, it } from 'vitest';
import { fitBaseline, type BaselineSplit, type FitBaselineInput } from '../../../shared/ml/baseline.js';
import { startBaseline } from '../../../shared/ml/baseline-thread.js';
import type { ObjectStore } from '../../../shared/ports/object-store.js';

/** Images of 3 classes, each a colour with noise, so the baseline learns something and its figures tell runs apart. */
function split(count: number, seed: number): BaselineSplit {
  const side = 16;
  const pixels = new Uint8Array(count * side * side * 3);
  const y = new Int32Array(count);
  let s = seed;
  for (let i = 0; i < count; i++) {
    y[i] = i % 3;
    for (let p = 0; p < side * side; p++) {
      for (let c = 0; c < 3; c++) {
        s = (s * 1103515245 + 12345) % 2147483648;
        pixels[(i * side * side + p) * 3 + c] = (c === y[i] ? 150 : 50) + (s >>> 25);
      }
    }
  }
  return { pixels, count, targets: { colour: y } };
}

// The none embedder reads nothing from the store: one that refuses every call proves it.
const noStore = new Proxy({}, { get: () => () => Promise.reject(new Error('the baseline read the store')) }) as ObjectStore;

const input: FitBaselineInput = {
  store: noStore,
  splits: { train: split(60, 1), validation: split(15, 2), test: split(15, 3) },
  sourceShape: [16, 16, 3],
  heads: [{ name: 'colour', type: 'classification', auxiliary: false, labels: ['red', 'green', 'blue'] }],
  seed: 7,
  epochs: 6,
};

/** Waits until a line matching `re` has been logged (the worker's code loads in the background). */
async function untilLogged(lines: string[], re: RegExp): Promise<void> {
  for (let waited = 0; !lines.some((l) => re.test(l)); waited += 20) {
    if (waited > 30_000) throw new Error(`nothing logged like ${re}; got ${JSON.stringify(lines)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('startBaseline', () => {
  it('trains the baseline on a worker thread with the figures of training it here', async () => {
    // Arrange
    const here = await fitBaseline(input);
    const lines: string[] = [];

    // Act
    const run = await startBaseline(input, (l) => lines.push(l), { cores: 2 });
    await untilLogged(lines, /^baseline: training on a worker thread/);
    const there = await run.result;

    // Assess
    expect(run.where).toBe('worker');
    expect(lines[0]).toMatch(/^baseline: training on a worker thread, beside the job \(its code loaded in \d+ ms\)$/);
    // What tfjs says in the worker comes through the same log (the job's output is structured lines).
    expect(lines.slice(1)).toEqual([expect.stringMatching(/^tfjs: using /)]);
    expect(there?.epochsRun).toBe(here?.epochsRun);
    expect(there?.test).toEqual(here?.test);
    expect(there?.ms).toBeGreaterThan(0);
  });

  it('trains on this thread when there is one core, only once awaited', async () => {
    // Act
    const run = await startBaseline(input, () => {}, { cores: 1 });

    // Assess
    expect(run.where).toBe('main');
    expect((await run.result)?.test.colour).toMatchObject({ type: 'classification', count: 15 });
  });

  it('falls back to this thread, saying why, when the worker cannot load its code', async () => {
    // Arrange
    const lines: string[] = [];

    // Act
    const run = await startBaseline(input, (l) => lines.push(l), { cores: 2, entry: new URL('./no-such-worker.ts', import.meta.url) });
    await untilLogged(lines, /^baseline: no worker thread/);
    const result = await run.result;

    // Assess
    expect(result?.test).toEqual((await fitBaseline(input))?.test);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^baseline: no worker thread \(.*no-such-worker.*\); training it on the main thread$/);
  });

  it('stops a worker still training, leaving no unhandled rejection (a failed job stops it so)', async () => {
    // Arrange: a worker that has started training
    const lines: string[] = [];
    const run = await startBaseline(input, (l) => lines.push(l), { cores: 2 });
    await untilLogged(lines, /^baseline: training on a worker thread/);

    // Act
    run.stop();
    await new Promise((r) => setTimeout(r, 300));

    // Assess: asked for after all, the result says why there is none (vitest fails the run on an unhandled rejection)
    await expect(run.result).rejects.toThrow(/worker thread exited with code \d+ before its result/);
  });

  it('trains here, saying so, when asked for the result before the worker has loaded its code', async () => {
    // Arrange
    const lines: string[] = [];
    const run = await startBaseline(input, (l) => lines.push(l), { cores: 2 });

    // Act: asked for at once (loading the worker's code takes hundreds of milliseconds)
    const result = await run.result;

    // Assess
    expect(lines).toEqual(['baseline: the worker thread had not loaded its code yet; training it on the main thread']);
    expect(result?.test).toEqual((await fitBaseline(input))?.test);
  });

  it('rejects with the error the training raised in the worker', async () => {
    // Arrange: a task the baseline cannot build a head for
    const bad = { ...input, heads: [{ name: 'colour', type: 'ranking', auxiliary: false } as unknown as FitBaselineInput['heads'][number]] };
    const here = await fitBaseline(bad).catch((err: Error) => err);

    // Act
    const lines: string[] = [];
    const run = await startBaseline(bad, (l) => lines.push(l), { cores: 2 });
    await untilLogged(lines, /^baseline: training on a worker thread/);

    // Assess: the same error, name and message, as training it here
    expect(here).toBeInstanceOf(Error);
    await expect(run.result).rejects.toMatchObject({ name: (here as Error).name, message: (here as Error).message });
  });
});
