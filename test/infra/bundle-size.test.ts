import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { measureColdStart, publishColdStartModel } from '../../infra/scripts/cold-start.js';
import { measurePredictBundle, type BundleMeasurement } from '../../infra/scripts/measure-bundle.js';

describe('predict function bundle', () => {
  let dir: string;
  let bundle: BundleMeasurement;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tl-bundle-'));
    // Act: bundle and layer exactly as the CDK app deploys them
    bundle = await measurePredictBundle(path.join(dir, 'lambda'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("fits Lambda's 250 MB unzipped limit with its layer", () => {
    expect(bundle.limitBytes).toBe(250 * 1024 * 1024);
    expect(bundle.totalBytes).toBe(bundle.functionBytes + bundle.layerBytes);
    expect(bundle.totalBytes).toBeLessThanOrEqual(bundle.limitBytes);
  });

  it('serves a predict from the bundle and the layer alone', async () => {
    // Prepare: a MobileNetV2-based model in a folder store
    const bucketDir = path.join(dir, 'bucket');
    const model = await publishColdStartModel(bucketDir);

    // Act: a fresh process imports the bundled handler, as Lambda's init does
    const r = await measureColdStart({ handlerFile: bundle.handlerFile, bucketDir, model });

    // Assess: the wasm backend and sharp load from the layer
    expect(r.status).toBe(200);
    expect(r.backend).toContain('wasm');
  });
});
