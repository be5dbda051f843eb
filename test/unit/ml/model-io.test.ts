import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempStore } from '../../helpers/temp-store.js';
import type { Tensor } from '@tensorflow/tfjs';
import { FsObjectStore } from '../../../shared/adapters/local/fs-object-store.js';
import { loadTf } from '../../../shared/tf/loader.js';
import { buildHeadModel } from '../../../shared/ml/architectures.js';
import { loadModel, loadWeights, saveModel, saveWeights } from '../../../shared/ml/model-io.js';

describe('ObjectStore model IO', () => {
  let cleanup: () => Promise<void>;
  let store: FsObjectStore;
  beforeEach(async () => {
    ({ store, cleanup } = await tempStore('tl-model-io-'));
  });
  afterEach(async () => cleanup());

  it('saves a model as model.json + weights.bin and loads it back with identical predictions', async () => {
    // Prepare
    const { tf } = await loadTf();
    const model = await buildHeadModel({
      embeddingSize: 6,
      tasks: [
        { name: 'a', type: 'classification', auxiliary: false, labels: ['x', 'y', 'z'] },
        { name: 'b', type: 'classification', auxiliary: false, labels: ['p', 'q'] },
      ],
      sharing: { method: 'hard', trunk: [5] },
      seed: 11,
    });
    const x = tf.randomNormal([4, 6], 0, 1, 'float32', 1);

    // Act
    await saveModel(model, store, 'models/m/v1');
    const loaded = await loadModel(store, 'models/m/v1');

    // Assess
    expect((await store.list('models/m/v1/')).map((o) => o.key)).toEqual(['models/m/v1/model.json', 'models/m/v1/weights.bin']);
    const json = JSON.parse((await store.get('models/m/v1/model.json')).toString());
    expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
    const before = model.predict(x) as Tensor[];
    const after = loaded.predict(x) as Tensor[];
    expect(loaded.outputNames).toEqual(model.outputNames);
    for (let i = 0; i < 2; i++) expect(Array.from(await after[i].data())).toEqual(Array.from(await before[i].data()));
    [x, ...before, ...after].forEach((t) => t.dispose());
    model.dispose();
    loaded.dispose();
  });

  it('round-trips bare weight tensors in order', async () => {
    const { tf } = await loadTf();
    const ws = [
      tf.tensor2d([
        [1, 2],
        [3, 4],
      ]),
      tf.tensor1d([0.5, -0.25, 7]),
    ];
    await saveWeights(store, 'jobs/j/checkpoint/e1/current', ws);
    const back = await loadWeights(store, 'jobs/j/checkpoint/e1/current');
    expect(back.map((t) => t.shape)).toEqual([[2, 2], [3]]);
    expect(Array.from(await back[1].data())).toEqual([0.5, -0.25, 7]);
    [...ws, ...back].forEach((t) => t.dispose());
  });
});
