import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  assertTrainable,
  DatasetError,
  datasetContentHash,
  detectLayout,
  listDatasetObjects,
  parseManifest,
  readDatasetContents,
  summarizeTasks,
} from '../../../shared/data/dataset.js';
import type { ObjectInfo } from '../../../shared/ports/object-store.js';
import type { LabelValue } from '../../../shared/schemas/manifest.js';
import { TaskSchema, type Task } from '../../../shared/schemas/spec.js';
import { makeTmpStore, type TmpStore } from './helpers.js';

const task = (name: string, type: Task['type'] = 'classification', size?: number) => TaskSchema.parse({ name, type, ...(size ? { size } : {}) });
const TASKS: Task[] = [task('species'), task('tags', 'multilabel'), task('box', 'regression')];

function manifestError(text: string, tasks: Task[] = TASKS): DatasetError {
  try {
    parseManifest(text, tasks);
  } catch (err) {
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).code).toBe('INVALID_MANIFEST');
    return err as DatasetError;
  }
  throw new Error('expected parseManifest to throw');
}

const line = (o: unknown) => JSON.stringify(o);
type Labelled = { labels: Record<string, LabelValue | null> };

describe('parseManifest', () => {
  it('reads records with partial labels, skipping blank lines and keeping line numbers', () => {
    const text = [
      line({ source: 'a.jpg', labels: { species: 'cat', tags: ['indoor'], box: [0.1, 0.2, 0.5, 0.6] } }),
      '',
      line({ source: 'b.jpg', labels: { species: 3, box: null } }),
      line({ source: 'c.jpg' }),
      '',
    ].join('\n');

    const entries = parseManifest(text, TASKS);

    expect(entries).toEqual([
      { line: 1, source: 'a.jpg', labels: { species: 'cat', tags: ['indoor'], box: [0.1, 0.2, 0.5, 0.6] } },
      // An integer class is taken as its name.
      { line: 3, source: 'b.jpg', labels: { species: '3', box: null } },
      { line: 4, source: 'c.jpg', labels: {} },
    ]);
  });

  it('names the line of invalid JSON', () => {
    const err = manifestError(`${line({ source: 'a.jpg', labels: {} })}\n{"source": "b.jpg",`);

    expect(err.message).toMatch(/^manifest\.jsonl line 2: not valid JSON/);
  });

  it('names the line and field of a schema problem', () => {
    expect(manifestError(line({ labels: { species: 'cat' } })).message).toMatch(/line 1, field "source"/);
    expect(manifestError(line({ source: '../x.jpg' })).message).toMatch(/line 1, field "source": source must stay inside/);
    expect(manifestError(`\n${line({ source: 'a.jpg', labels: { species: { name: 'cat' } } })}`).message).toMatch(
      /line 2, field "labels\.species": expected a class name, a list of class names, a number, a list of numbers or null/,
    );
    expect(manifestError(line({ source: 'a.jpg', label: 'cat' })).message).toMatch(/line 1: unknown field "label"/);
    expect(manifestError('[1, 2]').message).toMatch(/line 1: expected an object/);
  });

  it('refuses a task the spec does not declare, naming line, field and the known tasks', () => {
    const err = manifestError([line({ source: 'a.jpg', labels: { species: 'cat' } }), line({ source: 'b.jpg', labels: { colour: 'red' } })].join('\n'));

    expect(err.message).toBe('manifest.jsonl line 2, field "labels.colour": unknown task "colour"; train.json declares "species", "tags", "box"');
  });

  it('refuses a regression label whose length differs from the first one', () => {
    const err = manifestError([line({ source: 'a.jpg', labels: { box: [1, 2, 3, 4] } }), line({ source: 'b.jpg', labels: { box: [1, 2, 3] } })].join('\n'));

    expect(err.message).toBe('manifest.jsonl line 2, field "labels.box": "box" needs 4 values (line 1), got 3');
  });

  it('refuses a regression label whose length differs from the size in the spec', () => {
    const err = manifestError(line({ source: 'a.jpg', labels: { box: 0.5 } }), [task('box', 'regression', 4)]);

    expect(err.message).toMatch(/line 1, field "labels\.box": "box" needs 4 values \(its size in train\.json\), got 1/);
  });

  it('refuses values of the wrong kind for the task type', () => {
    expect(manifestError(line({ source: 'a.jpg', labels: { species: ['cat', 'dog'] } })).message).toMatch(
      /classification task: expected one class name, got a list of 2 strings/,
    );
    expect(manifestError(line({ source: 'a.jpg', labels: { species: 1.5 } })).message).toMatch(/got the number 1\.5/);
    expect(manifestError(line({ source: 'a.jpg', labels: { tags: 'indoor' } })).message).toMatch(
      /multilabel task: expected a list of class names, got the string "indoor"/,
    );
    expect(manifestError(line({ source: 'a.jpg', labels: { box: 'big' } })).message).toMatch(/regression task: expected a number or a list of numbers/);
  });

  it('refuses a source listed twice', () => {
    const err = manifestError([line({ source: 'a.jpg' }), line({ source: 'b.jpg' }), line({ source: 'a.jpg' })].join('\n'));

    expect(err.message).toBe('manifest.jsonl line 3, field "source": "a.jpg" is already listed on line 1');
  });
});

describe('readDatasetContents', () => {
  let tmp: TmpStore;
  beforeEach(async () => {
    tmp = await makeTmpStore();
  });
  afterEach(async () => tmp.cleanup());

  it('reads a folder-per-label dataset and lists files that are not records with a reason', async () => {
    // Prepare
    const { store } = tmp;
    for (const key of ['train.json', 'cat/1.jpg', 'cat/more/2.jpg', 'dog/1.png', 'README.md', '.DS_Store', 'dog/.hidden.jpg', '__MACOSX/cat/._1.jpg'])
      await store.put(`datasets/pets/${key}`, 'x');
    const objects = await listDatasetObjects(store, 'pets');

    // Act
    const contents = await readDatasetContents(store, 'pets', objects, [task('class')]);

    // Assess
    expect(contents.layout).toBe('folders');
    expect(contents.items.map((i) => [i.key, i.objectKey, i.labels])).toEqual([
      ['cat/1.jpg', 'datasets/pets/cat/1.jpg', { class: 'cat' }],
      ['cat/more/2.jpg', 'datasets/pets/cat/more/2.jpg', { class: 'cat' }],
      ['dog/1.png', 'datasets/pets/dog/1.png', { class: 'dog' }],
    ]);
    expect(Object.fromEntries(contents.skipped.map((s) => [s.key, s.reason]))).toEqual({
      '.DS_Store': 'hidden file',
      'README.md': 'at the top level of the dataset, not in a <label>/ folder',
      '__MACOSX/cat/._1.jpg': 'macOS archive metadata (__MACOSX), not data',
      'dog/.hidden.jpg': 'hidden file',
    });
  });

  it('refuses a folder dataset whose spec declares several tasks', async () => {
    await tmp.store.put('datasets/pets/cat/1.jpg', 'x');

    const read = readDatasetContents(tmp.store, 'pets', await listDatasetObjects(tmp.store, 'pets'), [task('species'), task('breed')]);

    await expect(read).rejects.toMatchObject({
      code: 'INVALID_DATASET',
      message: expect.stringMatching(/exactly one classification task.*2 tasks \("species", "breed"\)/),
    });
  });

  it('reads a manifest dataset, listing missing and unlisted files', async () => {
    // Prepare
    const { store } = tmp;
    const manifest = [
      line({ source: 'img/a.jpg', labels: { species: 'cat' } }),
      line({ source: 'img/gone.jpg', labels: { species: 'dog' } }),
      line({ source: 'img/b.jpg', labels: { species: null } }),
    ].join('\n');
    await store.put('datasets/zoo/manifest.jsonl', manifest);
    for (const key of ['train.json', 'img/a.jpg', 'img/b.jpg', 'img/extra.jpg']) await store.put(`datasets/zoo/${key}`, 'x');
    const objects = await listDatasetObjects(store, 'zoo');

    // Act
    const contents = await readDatasetContents(store, 'zoo', objects, TASKS);

    // Assess
    expect(detectLayout(objects, 'zoo')).toBe('manifest');
    expect(contents.layout).toBe('manifest');
    expect(contents.items).toEqual([{ key: 'img/a.jpg', objectKey: 'datasets/zoo/img/a.jpg', labels: { species: 'cat' }, line: 1 }]);
    expect(contents.skipped).toEqual([
      { key: 'img/gone.jpg', reason: 'listed on line 2 of manifest.jsonl but not uploaded' },
      { key: 'img/b.jpg', reason: 'line 3 of manifest.jsonl gives no labels' },
      { key: 'img/extra.jpg', reason: 'not listed in manifest.jsonl' },
    ]);
  });
});

describe('datasetContentHash', () => {
  const objects: ObjectInfo[] = [
    { key: 'datasets/pets/cat/1.jpg', size: 100, etag: 'aaa' },
    { key: 'datasets/pets/dog/1.jpg', size: 200, etag: 'bbb' },
    { key: 'datasets/pets/train.json', size: 20, etag: 'ccc' },
  ];
  const spec = Buffer.from('{"base":"none"}');

  it('is stable for the same content in any listing order', () => {
    const h = datasetContentHash(objects, 'pets', spec);

    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(datasetContentHash([...objects].reverse(), 'pets', spec)).toBe(h);
    // Keys are taken relative to the dataset, so a copy under another name hashes the same.
    expect(
      datasetContentHash(
        objects.map((o) => ({ ...o, key: o.key.replace('pets', 'pets-copy') })),
        'pets-copy',
        spec,
      ),
    ).toBe(h);
  });

  it('changes with an etag, a size, a file added or removed, or the spec', () => {
    const h = datasetContentHash(objects, 'pets', spec);
    const changed = [
      datasetContentHash([{ ...objects[0], etag: 'zzz' }, ...objects.slice(1)], 'pets', spec),
      datasetContentHash([{ ...objects[0], size: 101 }, ...objects.slice(1)], 'pets', spec),
      datasetContentHash([...objects, { key: 'datasets/pets/dog/2.jpg', size: 5, etag: 'ddd' }], 'pets', spec),
      datasetContentHash(objects.slice(1), 'pets', spec),
      datasetContentHash(objects, 'pets', Buffer.from('{"base":"mobilenet_v2"}')),
    ];

    expect(new Set([h, ...changed]).size).toBe(6);
  });
});

describe('summarizeTasks and assertTrainable', () => {
  it('counts labels per task, classes per task and regression sizes, skipping missing labels', () => {
    const items: Labelled[] = [
      { labels: { species: 'cat', tags: ['indoor', 'striped'], box: [1, 2, 3, 4] } },
      { labels: { species: 'dog', tags: [], box: null } },
      { labels: { species: 'cat' } },
    ];

    const summary = summarizeTasks(TASKS, items);

    expect(summary).toEqual({
      species: { type: 'classification', labelled: 3, classes: { cat: 2, dog: 1 } },
      tags: { type: 'multilabel', labelled: 2, classes: { indoor: 1, striped: 1 } },
      box: { type: 'regression', labelled: 1, size: 4 },
    });
  });

  it('names each label with fewer than two usable images and its count', () => {
    const summary = summarizeTasks([task('class')], [{ labels: { class: 'cat' } }, { labels: { class: 'cat' } }, { labels: { class: 'dog' } }]);

    expect(() => assertTrainable([task('class')], summary)).toThrow(
      expect.objectContaining({ code: 'TOO_FEW_EXAMPLES', message: 'label with fewer than 2 usable images: "dog" has 1. Add images or remove that label' }),
    );
  });

  it('refuses a classification task with only one class', () => {
    const summary = summarizeTasks([task('species')], [{ labels: { species: 'cat' } }, { labels: { species: 'cat' } }]);

    expect(() => assertTrainable([task('species')], summary)).toThrow(
      expect.objectContaining({ code: 'TOO_FEW_CLASSES', message: expect.stringMatching(/"species" has only one class \("cat"\)/) }),
    );
  });

  it('refuses a task without labels and accepts a trainable dataset', () => {
    const tasks = [task('species'), task('box', 'regression')];
    const labelled: Labelled[] = [
      { labels: { species: 'cat', box: [1] } },
      { labels: { species: 'cat', box: [2] } },
      { labels: { species: 'dog' } },
      { labels: { species: 'dog' } },
    ];
    const oneBox: Labelled[] = [labelled[0], { labels: { species: 'cat' } }, labelled[2], labelled[3]];

    expect(() => assertTrainable(tasks, summarizeTasks(tasks, oneBox))).toThrow(
      expect.objectContaining({ code: 'TOO_FEW_EXAMPLES', message: expect.stringMatching(/regression task "box" has 1 usable labelled example;/) }),
    );
    expect(() => assertTrainable(tasks, summarizeTasks(tasks, labelled))).not.toThrow();
  });
});
