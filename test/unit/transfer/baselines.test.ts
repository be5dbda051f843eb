import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempStore } from '../../helpers/temp-store.js';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { readMetadata } from '../../../shared/models/registry.js';
import { ModelMetricsSchema, PromotionDecisionSchema } from '../../../shared/schemas/metrics.js';
import { VersionReportSchema } from '../../../shared/schemas/version-report.js';
import { COLOURS, FAST, runJob, writeTinyBase, type DatasetOptions } from './fixtures.js';

/**
 * "Does transfer help?" for every task kind: a job with only a regression task and
 * one with only a multilabel task each report the from-scratch baseline (R² and MAE,
 * with predicting the train mean beside them; micro/macro F1) and a verdict, and
 * the promotion gate compares their next versions by R² and micro-F1.
 */
describe('baselines for every task kind', () => {
  let cleanup: () => Promise<void>;
  let store: FsObjectStore;
  const per = { train: 24, validation: 9, test: 9 };
  const total = per.train + per.validation + per.test;

  // The value and the tags follow the image's colour, so both are learnable from pixels.
  const regression = (hash: string, training = FAST): DatasetOptions => ({
    dataset: 'brightness',
    hash,
    classes: COLOURS,
    perSplit: per,
    labelsOf: (c) => ({ y: 2 * c + 1 }),
    tasks: { y: { type: 'regression', labelled: total, size: 1 } },
    spec: { base: 'tiny', tasks: [{ name: 'y', type: 'regression' }], training },
  });
  const TAGS = [['warm'], ['cool'], ['warm', 'cool']];
  const multilabel = (hash: string, training = FAST): DatasetOptions => ({
    dataset: 'tags',
    hash,
    classes: COLOURS,
    perSplit: per,
    labelsOf: (c) => ({ tags: TAGS[c] }),
    tasks: { tags: { type: 'multilabel', labelled: total, classes: { warm: (total * 2) / 3, cool: (total * 2) / 3 } } },
    spec: { base: 'tiny', tasks: [{ name: 'tags', type: 'multilabel' }], training },
  });
  const hopeless = { ...FAST, epochs: 1, learningRate: 1e-9 };

  beforeAll(async () => {
    ({ store, cleanup } = await tempStore('tl-baselines-'));
    await writeTinyBase(store);
  });
  afterAll(async () => cleanup());

  it('a regression-only job reports R² and MAE against the from-scratch regressor and the train mean, with a verdict', async () => {
    // Act
    const { version, report } = await runJob(store, regression('r1'));

    // Assess: the report (read through its schema) carries the baseline of task y
    const baseline = VersionReportSchema.parse(report).transfer?.baseline;
    expect(baseline?.test.y).toMatchObject({ type: 'regression', count: per.test, mae: expect.any(Number), r2: expect.any(Number) });
    const trainMean = (baseline?.test.y as { trainMean: { r2: number; mae: number } }).trainMean;
    expect(trainMean.mae).toBeGreaterThan(0);
    expect(trainMean.r2).toBeLessThanOrEqual(0.05);
    const y = baseline!.tasks.y;
    expect(y).toMatchObject({ metric: 'r2', higherIsBetter: true, trainMean: { beaten: expect.any(Boolean) } });
    expect(y.figures?.mae.transfer).toBeCloseTo(report.tasks.y.test.mae, 6);
    expect(y.difference).toBeCloseTo(report.tasks.y.test.r2 - (baseline!.test.y as { r2: number }).r2, 6);
    expect(baseline!.verdict).toMatch(/task "y"/);
    expect(baseline!.verdict).toMatch(/R²/);
    expect(baseline!.verdict).toMatch(/MAE|train mean/);
    // The verdict reaches the model's metrics (GET /models/{model}) too.
    const meta = await readMetadata(store, 'brightness', version);
    expect(ModelMetricsSchema.parse(meta!.metrics).baseline?.verdict).toBe(baseline!.verdict);
  });

  it('a multilabel-only job reports micro and macro F1 against a from-scratch multilabel head, with a verdict', async () => {
    // Act
    const { version, report } = await runJob(store, multilabel('m1'));

    // Assess
    const baseline = VersionReportSchema.parse(report).transfer?.baseline;
    expect(baseline?.test.tags).toMatchObject({ type: 'multilabel', count: per.test, microF1: expect.any(Number), macroF1: expect.any(Number) });
    const tags = baseline!.tasks.tags;
    expect(tags).toMatchObject({ metric: 'microF1', higherIsBetter: true });
    expect(tags.transfer).toBeCloseTo(report.tasks.tags.test.microF1, 6);
    expect(tags.figures?.macroF1.transfer).toBeCloseTo(report.tasks.tags.test.macroF1, 6);
    expect(baseline!.verdict).toMatch(/task "tags".*micro-F1/);
    const meta = await readMetadata(store, 'tags', version);
    expect(ModelMetricsSchema.parse(meta!.metrics).baseline?.verdict).toBe(baseline!.verdict);
  });

  it('the promotion gate compares a regression task by R² and a multilabel task by micro-F1', async () => {
    // Act: next versions of both models
    const r = await runJob(store, regression('r2', hopeless));
    const m = await runJob(store, multilabel('m2', hopeless));

    // Assess: each was measured against the serving version on the same records, by its kind's figure
    const rGate = PromotionDecisionSchema.parse(r.report.transfer.promotion);
    const mGate = PromotionDecisionSchema.parse(m.report.transfer.promotion);
    expect(rGate.comparisons).toEqual(expect.arrayContaining([expect.objectContaining({ task: 'y', metric: 'r2', on: 'test split of this job' })]));
    expect(mGate.comparisons).toEqual(expect.arrayContaining([expect.objectContaining({ task: 'tags', metric: 'microF1', on: 'test split of this job' })]));
    expect(rGate.reason).not.toMatch(/without a comparison/);
    expect(mGate.reason).not.toMatch(/without a comparison/);
  });
});
