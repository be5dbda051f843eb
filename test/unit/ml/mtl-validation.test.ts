import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../../shared/data/dataset.js';
import { TaskSchema } from '../../../shared/schemas/spec.js';

const tasks = [
  TaskSchema.parse({ name: 'shape' }),
  TaskSchema.parse({ name: 'tags', type: 'multilabel' }),
  TaskSchema.parse({ name: 'centre', type: 'regression', size: 2 }),
];
const manifest = (...lines: object[]) => lines.map((l) => JSON.stringify(l)).join('\n');

describe('manifest validation for multi-task datasets', () => {
  it('accepts records that leave out tasks or give null, and keeps them unlabelled', () => {
    const entries = parseManifest(
      manifest({ source: 'a.png', labels: { shape: 'circle' } }, { source: 'b.png', labels: { tags: ['red'], centre: [0.5, 0.25], shape: null } }),
      tasks,
    );
    expect(entries.map((e) => e.labels)).toEqual([{ shape: 'circle' }, { tags: ['red'], centre: [0.5, 0.25], shape: null }]);
  });

  it('refuses a multilabel list that repeats a class, naming the line and field', () => {
    expect(() =>
      parseManifest(manifest({ source: 'a.png', labels: { shape: 'circle' } }, { source: 'b.png', labels: { tags: ['red', 'big', 'red'] } }), tasks),
    ).toThrow('manifest.jsonl line 2, field "labels.tags": "tags" lists the class "red" more than once');
  });

  it('refuses a regression vector of the wrong length, naming the line and field', () => {
    expect(() => parseManifest(manifest({ source: 'a.png', labels: { centre: [0.5] } }), tasks)).toThrow(
      /line 1, field "labels.centre": "centre" needs 2 values/,
    );
  });

  it('refuses a regression value beyond the float32 range, naming the line and field', () => {
    const tasks_ = [...tasks, TaskSchema.parse({ name: 'price', type: 'regression' })];
    expect(() => parseManifest(manifest({ source: 'a.png', labels: { price: 1e39 } }), tasks_)).toThrow(
      'manifest.jsonl line 1, field "labels.price": a regression value must fit in float32',
    );
    expect(() => parseManifest(manifest({ source: 'a.png', labels: { price: 2 } }, { source: 'b.png', labels: { centre: [0.5, -1e39] } }), tasks_)).toThrow(
      /line 2, field "labels.centre.1": a regression value must fit in float32/,
    );
    expect(parseManifest(manifest({ source: 'a.png', labels: { price: 3e38 } }), tasks_)[0].labels).toEqual({ price: 3e38 });
  });
});
