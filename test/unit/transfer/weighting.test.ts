import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAlias } from '../../../shared/models/registry.js';
import type { ObjectStore } from '../../../shared/ports/object-store.js';
import { tempStore } from '../../helpers/temp-store.js';
import { runTrainingJob } from '../../../functions/train/core.js';
import { COLOURS, FAST, runJob, writeDataset, writeTinyBase, tonesExtending } from './fixtures.js';

/**
 * Fine-tuning and continual jobs train with the spec's `lossWeighting` and per-task
 * `weight`, like a heads-only job: they used to run a second loop that summed task
 * losses unweighted while the report still named the spec's weighting.
 */
describe('loss weighting in fine-tune and continual jobs', () => {
  let store: ObjectStore;
  let cleanup: () => Promise<void>;
  let old: string;

  beforeAll(async () => {
    ({ store, cleanup } = await tempStore('tl-weighting-'));
    await writeTinyBase(store);
    await runJob(store, { dataset: 'colours', hash: 'h1', classes: COLOURS, spec: { base: 'tiny', training: FAST } });
    old = (await readAlias(store, 'colours', 'latest'))!.version;
  });
  afterAll(async () => cleanup());

  it('continual (trunk frozen) trains the new task with its static weight and reports the weights it used', async () => {
    // Act
    const { report } = await runJob(store, {
      dataset: 'warmth',
      hash: 'w1',
      task: 'warm',
      classes: ['cold', 'warm'],
      imageClass: (l) => (l === 'warm' ? 2 : 0),
      seed: 500,
      spec: { model: 'colours', base: 'tiny', from: `colours@${old}`, tasks: [{ name: 'warm', weight: 0.25 }], training: { ...FAST, epochs: 3 } },
    });

    // Assess
    expect(report.training.taskWeights).toEqual({ class: 1, warm: 0.25 });
    for (const epoch of report.training.history) expect(epoch.weight_warm).toBe(0.25);
  });

  it('continual (trunk distilled) learns uncertainty weights when the spec asks for them', async () => {
    // Act
    const { report } = await runJob(
      store,
      tonesExtending(`colours@${old}`, 't1', {
        lossWeighting: { method: 'uncertainty' },
        fineTune: { layers: 1, learningRate: 0.001 },
        training: { ...FAST, epochs: 4 },
        promotion: { margin: 1 },
      }),
    );

    // Assess: the learned weight moved off its starting value 1
    expect(report.training.lossWeighting).toEqual({ method: 'uncertainty' });
    const last = report.training.history.at(-1);
    expect(last.weight_tone).toBeGreaterThan(0);
    expect(last.weight_tone).not.toBeCloseTo(1, 6);
    expect(report.training.taskWeights.tone).toBe(last.weight_tone);
  });

  it('a multi-task job trains with gradnorm, records the method and the learned weights (they sum to the number of tasks)', async () => {
    // Act: class (3 colours) and warmth (red vs the rest) on the same images
    const { report } = await runJob(store, {
      dataset: 'colours-gn',
      hash: 'g1',
      classes: COLOURS,
      labelsOf: (c) => ({ class: COLOURS[c], warm: c === 2 ? 'yes' : 'no' }),
      tasks: {
        class: { type: 'classification', labelled: 42, classes: { blue: 14, green: 14, red: 14 } },
        warm: { type: 'classification', labelled: 42, classes: { no: 28, yes: 14 } },
      },
      spec: {
        base: 'tiny',
        tasks: [{ name: 'class' }, { name: 'warm' }],
        lossWeighting: { method: 'gradnorm', alpha: 1.5 },
        training: FAST,
      },
    });

    // Assess
    expect(report.training.lossWeighting).toEqual({ method: 'gradnorm', alpha: 1.5, learningRate: 0.025 });
    const history: Array<Record<string, number>> = report.training.history;
    const last = history.at(-1)!;
    for (const h of history) expect(h.weight_class + h.weight_warm).toBeCloseTo(2, 5);
    expect(history.some((h) => Math.abs(h.weight_class - 1) > 0.01)).toBe(true);
    expect(report.training.taskWeights.class).toBeCloseTo(last.weight_class, 9);
    expect(report.tasks.class.test.accuracy).toBeGreaterThan(0.5);
  });

  it('continual on a frozen trunk refuses gradnorm with a spec error: no shared layer trains there', async () => {
    // Prepare
    const { preparedPrefix, jobId } = await writeDataset(
      store,
      tonesExtending(`colours@${old}`, 'gn', { lossWeighting: { method: 'gradnorm' }, training: FAST }),
    );

    // Act
    const result = await runTrainingJob({ jobId, preparedPrefix }, { store, statusIntervalMs: 0 });

    // Assess
    expect(result).toMatchObject({
      ok: false,
      error: { code: 'UNSUPPORTED_SPEC', message: expect.stringMatching(/"gradnorm" balances .* no layer shared by every task trains/) },
    });
  });

  it('fine-tuning the base top applies the task weight and the loss weighting of the spec', async () => {
    // Act
    const { report } = await runJob(store, {
      dataset: 'colours-ft',
      hash: 'f1',
      classes: COLOURS,
      spec: {
        base: 'tiny',
        tasks: [{ name: 'class', weight: 3 }],
        lossWeighting: { method: 'uncertainty' },
        fineTune: { layers: 2, epochs: 3, learningRate: 0.001 },
        training: { ...FAST, epochs: 3 },
      },
    });

    // Assess: every fine-tuning epoch logs the weight it trained with; uncertainty moves it off the static 3
    const history: Array<Record<string, number>> = report.transfer.fineTune.history;
    expect(history.length).toBeGreaterThan(0);
    for (const epoch of history) expect(epoch.weight_class).toBeGreaterThan(0);
    expect(history.at(-1)!.weight_class).not.toBeCloseTo(3, 6);
  });
});
