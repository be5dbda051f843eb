import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { apiEvent, vectorModelMetadata } from '../../helpers/api.js';
import { tempStore } from '../../helpers/temp-store.js';
import type { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { createHandler } from '../../../functions/predict/handler.js';
import { createModelCache } from '../../../functions/predict/model-cache.js';
import { buildHeadModel } from '../../../shared/ml/architectures.js';
import { NONE_INPUT_SHAPE } from '../../../shared/ml/base-models.js';
import { saveModel } from '../../../shared/ml/model-io.js';
import { aliasKey, setAlias, versionPrefix, writeMetadata } from '../../../shared/models/registry.js';
import type { ModelMetadata } from '../../../shared/schemas/model.js';
import { TrainSpecSchema } from '../../../shared/schemas/spec.js';

// Counts image decodes, to see when and how often a call decodes its images.
const decodes = vi.hoisted(() => ({ count: 0 }));
vi.mock('../../../shared/data/images.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../../shared/data/images.js')>();
  return {
    ...actual,
    decodeImage: (...args: Parameters<typeof actual.decodeImage>) => {
      decodes.count++;
      return actual.decodeImage(...args);
    },
  };
});

const V1 = 'v20260101000000-aaaaaa';
const V2 = 'v20260102000000-bbbbbb';
const V3 = 'v20260103000000-cccccc';

describe('model cache: what a predict call reads from the store', () => {
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  let handler: ReturnType<typeof createHandler>;
  const predict = async () => {
    const res = await handler(apiEvent('POST', '/models/{model}/predict', { model: 'm' }, { instances: [{ features: [1, 2] }] }));
    return { status: res.statusCode, body: JSON.parse(res.body) };
  };
  const reads = (get: { mock: { calls: unknown[][] } }, key: string) => get.mock.calls.filter(([k]) => k === key).length;

  beforeEach(async () => {
    ({ store, cleanup } = await tempStore('tl-model-cache-'));
    const meta = vectorModelMetadata('m', V1);
    const head = await buildHeadModel({ embeddingSize: 2, tasks: meta.tasks, sharing: { method: 'hard', trunk: [] } });
    for (const version of [V1, V2, V3]) await saveModel(head, store, versionPrefix('m', version));
    head.dispose();
    for (const version of [V1, V2]) await writeMetadata(store, vectorModelMetadata('m', version));
    await setAlias(store, 'm', 'latest', V1);
    handler = createHandler({ store, models: createModelCache(store) }, () => {});
  });
  afterEach(() => cleanup());

  it('reads a version’s metadata once, the alias on every call, and serves a promotion at once', async () => {
    // Prepare
    const get = vi.spyOn(store, 'get');

    // Act
    const first = await predict();
    const second = await predict();
    await setAlias(store, 'm', 'latest', V2);
    const promoted = await predict();

    // Assess
    expect([first.status, first.body.version, second.body.version, promoted.status, promoted.body.version]).toEqual([200, V1, V1, 200, V2]);
    expect(reads(get, `${versionPrefix('m', V1)}/metadata.json`)).toBe(1);
    expect(reads(get, `${versionPrefix('m', V2)}/metadata.json`)).toBe(1);
    expect(reads(get, aliasKey('m', 'latest'))).toBe(3 + 1); // setAlias reads it too
  });

  it('keeps no metadata it could not read: a version broken and then repaired is served', async () => {
    // Prepare: latest points at a version whose metadata is not JSON.
    await store.put(`${versionPrefix('m', V3)}/metadata.json`, '{"model": ');
    await setAlias(store, 'm', 'latest', V3);

    // Act
    const broken = await predict();
    await writeMetadata(store, vectorModelMetadata('m', V3));
    const repaired = await predict();

    // Assess
    expect([broken.status, broken.body.error?.code]).toEqual([409, 'MODEL_BROKEN']);
    expect([repaired.status, repaired.body.version]).toEqual([200, V3]);
  });
});

describe('model cache: decoding a call’s images while its version is resolved', () => {
  let store: FsObjectStore;
  let cleanup: () => Promise<void>;
  let handler: ReturnType<typeof createHandler>;
  let png: string;
  const tasks = [{ name: 'shape', type: 'classification' as const, auxiliary: false, labels: ['circle', 'square'] }];
  const imageMetadata = (version: string, shape: [number, number, number]): ModelMetadata => ({
    model: 'img',
    version,
    createdAt: new Date().toISOString(),
    kind: 'train',
    input: { type: 'image', shape },
    base: { name: 'none', embeddingSize: NONE_INPUT_SHAPE[0] * NONE_INPUT_SHAPE[1] * NONE_INPUT_SHAPE[2] },
    tasks,
    dataset: { name: 'img', hash: 'h' },
    spec: TrainSpecSchema.parse({ base: 'none' }),
    metrics: {},
  });
  const predict = async (body: Record<string, unknown>, h = handler) => {
    const res = await h(apiEvent('POST', '/models/{model}/predict', { model: 'img' }, { instances: [{ image: png }], ...body }));
    return { status: res.statusCode, body: JSON.parse(res.body) };
  };

  beforeEach(async () => {
    // Prepare: V1 takes the pixel base's own shape, V2 a larger one (resized to it by the embedder).
    ({ store, cleanup } = await tempStore('tl-decode-ahead-'));
    const head = await buildHeadModel({
      embeddingSize: NONE_INPUT_SHAPE[0] * NONE_INPUT_SHAPE[1] * NONE_INPUT_SHAPE[2],
      tasks,
      sharing: { method: 'hard', trunk: [4] },
    });
    for (const [version, shape] of [
      [V1, NONE_INPUT_SHAPE],
      [V2, [48, 40, 3]],
    ] as const) {
      await saveModel(head, store, versionPrefix('img', version));
      await writeMetadata(store, imageMetadata(version, [...shape]));
    }
    head.dispose();
    await setAlias(store, 'img', 'latest', V1);
    handler = createHandler({ store, models: createModelCache(store) }, () => {});
    png = (
      await sharp({ create: { width: 40, height: 30, channels: 3, background: '#3366cc' } })
        .png()
        .toBuffer()
    ).toString('base64');
  });
  afterEach(() => cleanup());

  it('has started decoding when it reads the alias, and decodes each image once', async () => {
    // Prepare: one call, so the cache knows the version the model serves.
    await predict({});
    const before = decodes.count;
    let decodedAtAliasRead: number | undefined;
    const read = store.get.bind(store);
    vi.spyOn(store, 'get').mockImplementation((key) => {
      if (key === aliasKey('img', 'latest')) decodedAtAliasRead ??= decodes.count;
      return read(key);
    });

    // Act
    const res = await predict({});

    // Assess
    expect([res.status, res.body.version]).toEqual([200, V1]);
    expect(decodedAtAliasRead! - before).toBe(1);
    expect(decodes.count - before).toBe(1);
  });

  it('decodes again for a version of another input shape, and answers as a fresh cache does', async () => {
    // Prepare
    await predict({});
    await setAlias(store, 'img', 'latest', V2);
    const before = decodes.count;

    // Act
    const res = await predict({});

    // Assess: the early decode (V1's shape) is not used for V2.
    expect([res.status, res.body.version]).toEqual([200, V2]);
    expect(decodes.count - before).toBe(2);
    const fresh = await predict(
      {},
      createHandler({ store, models: createModelCache(store) }, () => {}),
    );
    expect(res.body).toEqual(fresh.body);
  });

  it('answers the errors a cold call answers, in the same order', async () => {
    // Prepare
    const notImage = Buffer.from('not an image').toString('base64');
    const cases = [
      { tasks: ['nope'], instances: [{ image: notImage }] },
      { instances: [{ image: notImage }] },
      { instances: [{ features: [1, 2] }] },
      { instances: [{ image: '***' }] },
    ];
    const cold = [];
    for (const body of cases)
      cold.push(
        await predict(
          body,
          createHandler({ store, models: createModelCache(store) }, () => {}),
        ),
      );
    await predict({});

    // Act
    const warm = [];
    for (const body of cases) warm.push(await predict(body));

    // Assess
    expect(warm).toEqual(cold);
    expect(warm.map((r) => r.body.error.code)).toEqual(['UNKNOWN_TASK', 'INVALID_IMAGE', 'INVALID_INPUT', 'INVALID_BASE64']);
  });
});
