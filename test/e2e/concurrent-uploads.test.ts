/**
 * Identical uploads at the same time (two copies of an app retrying, S3 delivering
 * one notification twice) must start one job and publish one version.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateShapesImages } from '../../shared/local/demo-data.js';
import { startTestPlatform, type TestPlatform } from '../helpers/platform.js';

describe('identical concurrent uploads (embedded platform)', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await startTestPlatform();
  });
  afterAll(async () => t?.close());

  it('start one job and publish one version', async () => {
    // Prepare
    const images = await generateShapesImages({ perClass: 6, seed: 11 });
    const files = [
      ...images.map((im, i) => ({ path: `${im.label}/${i}.png`, data: im.buffer })),
      { path: 'train.json', data: JSON.stringify({ model: 'twice', training: { epochs: 3 } }) },
    ];

    // Act: four clients upload the very same dataset at once.
    await Promise.all([1, 2, 3, 4].map(() => t.upload('twice', files)));
    const job = await t.waitForJob('twice');
    await t.platform.whenIdle();

    // Assess
    expect(job.state, job.error?.message).toBe('succeeded');
    const bucket = t.platform.defaultTenant.bucketDir;
    const jobs = (await readdir(path.join(bucket, 'jobs'))).filter((j) => j.startsWith('train-twice-'));
    expect(jobs).toEqual([job.jobId]);
    const versions = (await readdir(path.join(bucket, 'models/twice'))).filter((v) => v.startsWith('v'));
    expect(versions).toEqual([job.version]);
    // One job ran: one model fitted (the search's refit, or a first epoch of heads) and one version published.
    expect(t.jobOutput.filter((l) => /refitted class on|epoch 1\//.test(l)).length).toBe(1);
    expect(t.jobOutput.filter((l) => l.includes('published twice@')).length).toBe(1);
  }, 300_000);
});
