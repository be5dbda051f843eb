import { describe, expect, it } from 'vitest';
import { assignSplits, hashUnit, splitOfKey, type SplitRecord } from '../../../shared/data/split.js';
import type { SplitName } from '../../../shared/schemas/report.js';

const FRACTIONS = { validationFraction: 0.15, testFraction: 0.15 };
const CLASS_TASK = [{ name: 'class', type: 'classification' as const }];

const records = (label: string, n: number, from = 0): SplitRecord[] =>
  Array.from({ length: n }, (_, i) => ({ key: `${label}/${from + i}.jpg`, labels: { class: label } }));

/** The first keys of a class whose hash puts them outside train. */
function heldOutKeys(label: string, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (splitOfKey(`${label}/${i}.jpg`, FRACTIONS) !== 'train') out.push(`${label}/${i}.jpg`);
  return out;
}

describe('hashUnit and splitOfKey', () => {
  it('map a key to the same place every time, in [0, 1)', () => {
    const u = hashUnit('cat/001.jpg');

    expect(u).toBe(hashUnit('cat/001.jpg'));
    expect(u).toBeGreaterThanOrEqual(0);
    expect(u).toBeLessThan(1);
    expect(hashUnit('cat/002.jpg')).not.toBe(u);
  });

  it('hold out about the requested fractions', () => {
    const counts: Record<SplitName, number> = { train: 0, validation: 0, test: 0 };
    for (let i = 0; i < 20_000; i++) counts[splitOfKey(`img-${i}.png`, { validationFraction: 0.1, testFraction: 0.2 })]++;

    expect(counts.test / 20_000).toBeCloseTo(0.2, 1);
    expect(counts.validation / 20_000).toBeCloseTo(0.1, 1);
    expect(counts.train / 20_000).toBeCloseTo(0.7, 1);
  });
});

describe('assignSplits', () => {
  it('is deterministic and does not depend on the order of the records', () => {
    const all = [...records('cat', 40), ...records('dog', 40)];
    const reversed = [...all].reverse();

    const a = assignSplits(all, FRACTIONS, CLASS_TASK);
    const b = assignSplits(reversed, FRACTIONS, CLASS_TASK);

    const byKey = (rs: SplitRecord[], s: SplitName[]) => Object.fromEntries(rs.map((r, i) => [r.key, s[i]]));
    expect(byKey(all, a)).toEqual(byKey(reversed, b));
    expect(new Set(a)).toEqual(new Set(['train', 'validation', 'test']));
  });

  it('keeps every existing key in its split when files are added', () => {
    // Prepare
    const before = [...records('cat', 50), ...records('dog', 50)];
    const after = [...before, ...records('cat', 30, 50), ...records('dog', 30, 50), ...records('bird', 20)];

    // Act
    const s1 = assignSplits(before, FRACTIONS, CLASS_TASK);
    const s2 = assignSplits(after, FRACTIONS, CLASS_TASK);

    // Assess
    before.forEach((r, i) => expect(s2[i], r.key).toBe(s1[i]));
  });

  it('moves one record of a class that the hash kept out of train into train', () => {
    // Prepare: two "rare" records that both hash into validation/test.
    const rare = heldOutKeys('rare', 2).map((key) => ({ key, labels: { class: 'rare' } }));
    const all = [...records('common', 30), ...rare];

    // Act
    const splits = assignSplits(all, FRACTIONS, CLASS_TASK);

    // Assess: exactly one of them moved, the one nearest the train range.
    const rareSplits = splits.slice(30);
    expect(rareSplits.filter((s) => s === 'train')).toHaveLength(1);
    const nearest = hashUnit(rare[0].key) > hashUnit(rare[1].key) ? 0 : 1;
    expect(rareSplits[nearest]).toBe('train');
    expect(rareSplits[1 - nearest]).toBe(splitOfKey(rare[1 - nearest].key, FRACTIONS));
    // The common class keeps its hash splits.
    all.slice(0, 30).forEach((r, i) => expect(splits[i]).toBe(splitOfKey(r.key, FRACTIONS)));
  });

  it('trains on the only record of a class', () => {
    const [only] = heldOutKeys('solo', 1);

    const splits = assignSplits([...records('common', 10), { key: only, labels: { class: 'solo' } }], FRACTIONS, CLASS_TASK);

    expect(splits[10]).toBe('train');
  });

  it('gives each multilabel class a training record and ignores records without the label', () => {
    const [k1, k2] = heldOutKeys('tags', 2);
    const recs: SplitRecord[] = [
      { key: k1, labels: { tags: ['striped'] } },
      { key: k2, labels: { tags: null } },
    ];

    const splits = assignSplits(recs, FRACTIONS, [{ name: 'tags', type: 'multilabel' }]);

    expect(splits[0]).toBe('train');
    expect(splits[1]).toBe(splitOfKey(k2, FRACTIONS));
  });

  it('leaves regression-only records on their hash split', () => {
    const keys = heldOutKeys('box', 3);

    const splits = assignSplits(
      keys.map((key) => ({ key, labels: { box: [1, 2, 3, 4] } })),
      FRACTIONS,
      [{ name: 'box', type: 'regression' }],
    );

    expect(splits).not.toContain('train');
  });
});
