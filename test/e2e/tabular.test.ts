import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readReport, readSplit } from '../../shared/data/shards.js';
import { readMetadata } from '../../shared/models/registry.js';
import { startTestPlatform, type TestPlatform } from '../helpers/platform.js';

/**
 * A table whose features sit on very different scales (a fraction, an income in
 * the tens of thousands, noise), some values missing: "high" when the fraction and
 * the income are high together, and a regression target from both.
 */
function record(i: number): { features: Array<number | null>; labels: { band: string; score: number } } {
  const u = (k: number) => Math.abs(Math.sin((i + 1) * 12.9898 + k * 78.233) * 43758.5453) % 1;
  const share = u(1);
  const income = 20_000 + 100_000 * u(2);
  const noise = u(3) - 0.5;
  const band = share + (income - 70_000) / 50_000 > 0.5 ? 'high' : 'low';
  return {
    // Missing values: the noise on every 7th record, the income on every 11th.
    features: [share, i % 11 === 5 ? null : income, i % 7 === 3 ? null : noise],
    labels: { band, score: 3 * share + income / 10_000 },
  };
}

describe('tabular (vector) data end to end (HTTP)', () => {
  let t: TestPlatform;

  beforeAll(async () => {
    t = await startTestPlatform();
  });
  afterAll(async () => t?.close());

  it('uploads a manifest of features, trains with standardisation fitted on train, and predicts rows', async () => {
    // Prepare
    const lines = Array.from({ length: 240 }, (_, i) => JSON.stringify(record(i))).join('\n');
    const spec = {
      model: 'table',
      input: { type: 'vector' },
      base: 'none',
      tasks: [{ name: 'band' }, { name: 'score', type: 'regression' }],
      training: { epochs: 80, batchSize: 16, learningRate: 0.01, patience: 20 },
    };

    // Act
    await t.upload('table', [
      { path: 'manifest.jsonl', data: lines },
      { path: 'train.json', data: JSON.stringify(spec) },
    ]);
    const job = await t.waitForJob('table');

    // Assess: trained and published
    expect(job.state, `${job.error?.message}\n${t.jobOutput.slice(-20).join('\n')}`).toBe('succeeded');
    const store = t.platform.defaultTenant.store;
    const report = await readReport(store, `prepared/table/${job.datasetHash}`);
    expect(report.inputShape).toEqual([3]);

    // The standardisation stored with the model is the train split's, missing values left out.
    const meta = await readMetadata(store, 'table', job.version!);
    if (meta?.input.type !== 'vector') throw new Error(`not a vector model: ${JSON.stringify(meta?.input)}`);
    const train = await readSplit(store, report, 'train');
    for (let j = 0; j < 3; j++) {
      const present = train.records.map((_, r) => train.data[r * 3 + j]).filter((v) => !Number.isNaN(v));
      const mean = present.reduce((a, b) => a + b, 0) / present.length;
      expect(meta.input.mean![j]).toBeCloseTo(mean, j === 1 ? 0 : 4);
    }
    expect(meta.input.std![1]).toBeGreaterThan(10_000);

    // Held-out rows (other indices), raw values: predict applies the stored standardisation.
    const heldOut = Array.from({ length: 30 }, (_, k) => record(10_000 + k));
    const res = await t.call('POST', '/models/table/predict', { instances: heldOut.slice(0, 30).map((h) => ({ features: h.features })) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const correct = res.body.predictions.filter((p: any, i: number) => p.band.label === heldOut[i].labels.band).length;
    expect(correct / heldOut.length).toBeGreaterThanOrEqual(0.8);
    expect(res.body.predictions[0].score.value).toHaveLength(1);

    // A missing value is read as the train mean.
    const missing = await t.call('POST', '/models/table/predict', { instances: [{ features: [0.5, null, 0] }, { features: [0.5, meta.input.mean![1], 0] }] });
    expect(missing.status).toBe(200);
    expect(missing.body.predictions[0].score.value[0]).toBeCloseTo(missing.body.predictions[1].score.value[0], 4);

    // A wrong length is a 400 naming the expected length.
    const wrong = await t.call('POST', '/models/table/predict', { instances: [{ features: [1, 2] }] });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toMatchObject({ code: 'INVALID_INPUT', message: expect.stringMatching(/has 2 values; model table expects 3/) });
  });
});
