import { describe, expect, it } from 'vitest';
import { classificationMetrics } from '../../../shared/ml/metrics.js';

describe('classificationMetrics', () => {
  it('matches hand-computed figures on a small confusion example', () => {
    // Prepare: 3 classes; truth/prediction pairs chosen so every cell is known.
    // true a: a, a, b   true b: b, c   true c: c, c, a
    const labels = ['a', 'b', 'c'];
    const truth = [0, 0, 0, 1, 1, 2, 2, 2];
    const predicted = [0, 0, 1, 1, 2, 2, 2, 0];

    // Act
    const m = classificationMetrics(truth, predicted, labels);

    // Assess
    expect(m.confusionMatrix).toEqual({
      labels,
      matrix: [
        [2, 1, 0],
        [0, 1, 1],
        [1, 0, 2],
      ],
    });
    expect(m.count).toBe(8);
    expect(m.accuracy).toBeCloseTo(5 / 8);
    const [a, b, c] = m.perClass;
    // a: tp 2, predicted 3, support 3 → P 2/3, R 2/3, F1 2/3
    expect(a).toMatchObject({ label: 'a', support: 3 });
    expect(a.precision).toBeCloseTo(2 / 3);
    expect(a.recall).toBeCloseTo(2 / 3);
    expect(a.f1).toBeCloseTo(2 / 3);
    // b: tp 1, predicted 2, support 2 → P 1/2, R 1/2, F1 1/2
    expect(b.precision).toBeCloseTo(0.5);
    expect(b.recall).toBeCloseTo(0.5);
    expect(b.f1).toBeCloseTo(0.5);
    // c: tp 2, predicted 3, support 3 → 2/3 each
    expect(c.f1).toBeCloseTo(2 / 3);
    expect(m.macroF1).toBeCloseTo((2 / 3 + 0.5 + 2 / 3) / 3);
  });

  it('scores a class that is never predicted 0 and leaves absent classes out of the macro average', () => {
    // Prepare: class c occurs nowhere; class b is never predicted.
    const m = classificationMetrics([0, 1, 1], [0, 0, 0], ['a', 'b', 'c']);

    // Assess: a: P 1/3, R 1 → F1 0.5; b: 0; macro over {a, b} only
    expect(m.perClass[1]).toMatchObject({ precision: 0, recall: 0, f1: 0, support: 2 });
    expect(m.perClass[2]).toMatchObject({ precision: 0, recall: 0, f1: 0, support: 0 });
    expect(m.macroF1).toBeCloseTo(0.25);
  });

  it('rejects mismatched lengths and out-of-range classes', () => {
    expect(() => classificationMetrics([0], [0, 1], ['a', 'b'])).toThrow(/1 true labels but 2/);
    expect(() => classificationMetrics([0], [2], ['a', 'b'])).toThrow(/out of range/);
  });
});
