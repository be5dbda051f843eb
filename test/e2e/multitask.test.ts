import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateShapesImages, type ShapeImage } from '../../shared/local/demo-data.js';
import { getJson } from '../../shared/ports/object-store.js';
import { startTestPlatform, type TestPlatform } from '../helpers/platform.js';

/**
 * Labels the test reads off each picture: the shape drawn, whether the background is
 * dark or light (a corner pixel), and the picture's mean colour as an RGB vector in
 * [0, 1] (a 3-value regression target).
 */
async function labelsOf(image: ShapeImage): Promise<{ shape: string; background: string; colour: number[] }> {
  const { data, info } = await sharp(image.buffer).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const corner = (data[0] + data[1] + data[2]) / 3;
  const sums = [0, 0, 0];
  for (let i = 0; i < data.length; i += info.channels) for (let c = 0; c < 3; c++) sums[c] += data[i + c];
  const pixels = data.length / info.channels;
  return { shape: image.label, background: corner < 128 ? 'dark' : 'light', colour: sums.map((s) => s / pixels / 255) };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('multi-task learning end to end (HTTP)', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await startTestPlatform();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('trains two classification tasks and a regression task from a manifest with missing labels, and predicts all three', async () => {
    // Prepare: 90 pictures; some records lack the shape, some the background, some the colour.
    const images = await generateShapesImages({ perClass: 30, seed: 21 });
    const files: Array<{ path: string; data: Buffer | string }> = [];
    const lines: string[] = [];
    const trainColours: number[][] = [];
    for (const [i, image] of images.entries()) {
      const path = `images/${i}.${image.format === 'jpeg' ? 'jpg' : image.format}`;
      const truth = await labelsOf(image);
      const labels: Record<string, unknown> = {};
      if (i % 5 !== 1) labels.shape = truth.shape;
      if (i % 7 !== 2) labels.background = truth.background;
      if (i % 4 !== 3) {
        labels.colour = truth.colour;
        trainColours.push(truth.colour);
      }
      files.push({ path, data: image.buffer });
      lines.push(JSON.stringify({ source: path, labels }));
    }
    files.push({ path: 'manifest.jsonl', data: lines.join('\n') });
    files.push({
      path: 'train.json',
      data: JSON.stringify({
        model: 'mtl-shapes',
        base: 'mobilenet_v2',
        tasks: [{ name: 'shape' }, { name: 'background' }, { name: 'colour', type: 'regression' }],
        lossWeighting: { method: 'uncertainty' },
      }),
    });

    // Act
    await t.upload('mtl-shapes', files);
    const job = await t.waitForJob('mtl-shapes');
    expect(job.state, `${job.error?.message}\n${t.jobOutput.slice(-20).join('\n')}`).toBe('succeeded');
    const heldOut = await generateShapesImages({ perClass: 8, seed: 4242 });
    const truth = await Promise.all(heldOut.map(labelsOf));
    const res = await t.call('POST', '/models/mtl-shapes/predict', { instances: heldOut.map((h) => ({ image: h.buffer.toString('base64') })) });

    // Assess: every task comes back from one call.
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const predictions = res.body.predictions as Array<Record<string, any>>;
    for (const p of predictions) {
      expect(Object.keys(p).sort()).toEqual(['background', 'colour', 'shape']);
      expect(p.colour.value).toHaveLength(3);
    }
    const accuracy = (task: 'shape' | 'background') => mean(predictions.map((p, i) => (p[task].label === truth[i][task] ? 1 : 0)));
    expect(accuracy('shape')).toBeGreaterThanOrEqual(0.7);
    expect(accuracy('background')).toBeGreaterThanOrEqual(0.85);
    // Colour is predicted in real units: closer than always answering the training mean.
    const trainMean = [0, 1, 2].map((c) => mean(trainColours.map((v) => v[c])));
    const mae = (guess: (i: number) => number[]) => mean(truth.flatMap((tr, i) => tr.colour.map((v, c) => Math.abs(v - guess(i)[c]))));
    expect(mae((i) => predictions[i].colour.value)).toBeLessThan(mae(() => trainMean));

    // The report counts labels per task and split, shows the weights and the single-task comparison.
    const described = (await t.call('GET', '/models/mtl-shapes')).body;
    expect(described.tasks.map((h: any) => h.name)).toEqual(['shape', 'background', 'colour']);
    expect(described.tasks[2]).toMatchObject({ type: 'regression', size: 3 });
    expect(described.metrics.colour).toHaveProperty('rmse');
    for (const task of ['shape', 'background', 'colour']) {
      expect(described.metrics.sharingComparison[task]).toEqual(
        expect.objectContaining({ withSharing: expect.any(Number), withoutSharing: expect.any(Number), difference: expect.any(Number) }),
      );
    }
    const report = await getJson<any>(t.platform.defaultTenant.store, `models/mtl-shapes/${job.version}/report.json`);
    const labelled = (task: string) => Object.values(report.tasks[task].labelled as Record<string, number>).reduce((a, b) => a + b, 0);
    expect(labelled('shape')).toBe(90 - 18);
    expect(labelled('background')).toBe(90 - 13);
    expect(labelled('colour')).toBe(90 - 22);
    expect(Object.keys(report.training.taskWeights).sort()).toEqual(['background', 'colour', 'shape']);
  }, 300_000);
});
