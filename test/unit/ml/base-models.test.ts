import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempStore } from '../../helpers/temp-store.js';
import { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { BaseModelDescriptorSchema } from '../../../shared/schemas/base-model.js';
import { descriptorKey, NONE_INPUT_SHAPE, resolveBase, UnknownBaseModelError } from '../../../shared/ml/base-models.js';
import { loadEmbedder } from '../../../shared/ml/embedder.js';

describe('resolveBase', () => {
  let cleanup: () => Promise<void>;
  let store: FsObjectStore;
  beforeAll(async () => {
    ({ store, cleanup } = await tempStore('tl-base-'));
  });
  afterAll(async () => cleanup());

  it('imports mobilenet_v2 into the store once, as a standard tfjs model with a valid descriptor', async () => {
    // Act
    const first = await resolveBase(store, 'mobilenet_v2');
    const etags = (await store.list('base-models/')).map((o) => `${o.key}:${o.etag}`);
    const second = await resolveBase(store, 'mobilenet_v2');

    // Assess
    expect(first.kind).toBe('pretrained');
    expect(second).toEqual(first);
    expect(etags.map((e) => e.split(':')[0])).toEqual([
      'base-models/mobilenet_v2/descriptor.json',
      'base-models/mobilenet_v2/model.json',
      'base-models/mobilenet_v2/weights.bin',
    ]);
    expect((await store.list('base-models/')).map((o) => `${o.key}:${o.etag}`)).toEqual(etags);
    const descriptor = BaseModelDescriptorSchema.parse(JSON.parse((await store.get(descriptorKey('mobilenet_v2'))).toString()));
    expect(descriptor).toMatchObject({ inputShape: [224, 224, 3], embedding: { size: 1280 }, normalization: { offset: 0 } });
    expect(descriptor.normalization.scale).toBeCloseTo(1 / 255);
    const modelJson = JSON.parse((await store.get('base-models/mobilenet_v2/model.json')).toString());
    expect(modelJson.format).toBe('layers-model');
    expect(modelJson.weightsManifest[0].paths).toEqual(['weights.bin']);
  });

  it('embeds two images into finite 1280-d vectors that differ between images', async () => {
    // Prepare: two different 224×224 RGB images
    const base = await resolveBase(store, 'mobilenet_v2');
    const embedder = await loadEmbedder(store, base);
    const pixels = new Uint8Array(2 * 224 * 224 * 3);
    for (let i = 0; i < pixels.length / 2; i++) pixels[i] = (i * 31) % 256;
    pixels.fill(200, pixels.length / 2);

    // Act
    const e = await embedder.embed(pixels, 2);

    // Assess
    expect(embedder.size).toBe(1280);
    expect(e).toHaveLength(2 * 1280);
    expect(e.every(Number.isFinite)).toBe(true);
    expect(e.some((v) => v !== 0)).toBe(true);
    expect(Array.from(e.subarray(0, 1280))).not.toEqual(Array.from(e.subarray(1280)));
    embedder.dispose();
  });

  it('gives a pixel input for "none" and refuses unknown bases and missing models', async () => {
    expect(await resolveBase(store, 'none')).toEqual({ kind: 'none', name: 'none', inputShape: NONE_INPUT_SHAPE });
    await expect(resolveBase(store, 'resnet_9000')).rejects.toThrow(UnknownBaseModelError);
    await expect(resolveBase(store, 'resnet_9000')).rejects.toThrow(/unknown base model "resnet_9000"/);
    // A trained model as a base resolves through the registry (see test/unit/transfer); here it does not exist.
    await expect(resolveBase(store, 'model:pets@latest')).rejects.toThrow(/model pets has no version "latest"/);
  });

  it('uses a base uploaded under base-models/<name>/ and rejects an invalid descriptor', async () => {
    await store.put(descriptorKey('broken'), JSON.stringify({ name: 'broken' }));
    await expect(resolveBase(store, 'broken')).rejects.toThrow(/invalid descriptor/);
    const builtin = await resolveBase(store, 'mobilenet_v2');
    if (builtin.kind !== 'pretrained') throw new Error('expected a pretrained base');
    const good = { ...builtin.descriptor, name: 'mine' };
    await store.put(descriptorKey('mine'), JSON.stringify(good));
    expect(await resolveBase(store, 'mine')).toMatchObject({ kind: 'pretrained', name: 'mine' });
  });
});
