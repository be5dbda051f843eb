import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../shared/local/cli.js';
import { generateShapesImages } from '../../shared/local/demo-data.js';
import { startTestPlatform, type TestPlatform } from '../helpers/platform.js';

describe('transfer over HTTP: few-shot prototypes and rollback', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await startTestPlatform();
  });
  afterAll(async () => t?.close());

  const uploadPrototypes = async (dataset: string, seed: number) => {
    const images = await generateShapesImages({ perClass: 1, seed });
    const since = Date.now();
    await t.upload(dataset, [
      ...images.map((img, i) => ({ path: `${img.label}/${i}.png`, data: img.buffer })),
      { path: 'train.json', data: JSON.stringify({ model: 'shapes-few', base: 'none', mode: 'prototype' }) },
    ]);
    const job = await t.waitForJob('shapes-few', { since, timeoutMs: 30_000 });
    return { images, job };
  };

  it('publishes a 1-shot prototype model without a training job, which predicts its own examples', async () => {
    // Act
    const { images, job } = await uploadPrototypes('few-a', 21);

    // Assess
    expect(job.state, JSON.stringify(job.error)).toBe('succeeded');
    expect(job.runnerJobId).toBeUndefined();
    expect(job.promoted).toBe(true);
    const res = await t.call('POST', '/models/shapes-few/predict', { instances: images.map((i) => ({ image: i.buffer.toString('base64') })) });
    expect(res.status).toBe(200);
    expect(res.body.predictions.map((p: any) => p.class.label)).toEqual(images.map((i) => i.label));
    const described = await t.call('GET', '/models/shapes-few');
    expect(described.body).toMatchObject({ kind: 'prototype', version: job.version });
  });

  it('rolls latest back to the previous version with one call', async () => {
    // Prepare: a second version
    const first = (await t.call('GET', '/models/shapes-few')).body.version;
    const { job } = await uploadPrototypes('few-b', 22);
    expect(job.version).not.toBe(first);
    expect((await t.call('GET', '/models/shapes-few')).body.version).toBe(job.version);

    // Act
    const res = await t.call('POST', '/models/shapes-few/rollback');

    // Assess
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ model: 'shapes-few', version: first, previous: job.version });
    expect((await t.call('GET', '/models/shapes-few')).body.version).toBe(first);
    expect((await t.call('POST', '/models/nope/rollback')).status).toBe(404);

    // Act: `tl rollback` undoes it
    let out = '';
    const io = { stdout: { write: (s: string) => void (out += s) }, stderr: { write: () => {} }, env: {}, cwd: process.cwd() };
    const code = await runCli(['rollback', 'shapes-few', '--endpoint', t.platform.url, '--api-key', t.apiKey], io);
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ version: job.version, previous: first });
    expect((await t.call('GET', '/models/shapes-few')).body.version).toBe(job.version);
  });
});
