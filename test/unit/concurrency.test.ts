import { describe, expect, it } from 'vitest';
import { forEachLimited, mapLimited } from '../../shared/concurrency.js';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe('forEachLimited / mapLimited', () => {
  it('keeps at most `limit` calls in flight and returns results in item order', async () => {
    let inFlight = 0;
    let most = 0;
    const out = await mapLimited([30, 5, 20, 1, 10, 2], 2, async (ms, i) => {
      most = Math.max(most, ++inFlight);
      await tick(ms);
      inFlight--;
      return `${i}:${ms}`;
    });
    expect(most).toBe(2);
    expect(out).toEqual(['0:30', '1:5', '2:20', '3:1', '4:10', '5:2']);
  });

  it('stops starting calls after the first failure and throws it once the calls in flight have ended', async () => {
    const started: number[] = [];
    const ended: number[] = [];
    const run = forEachLimited([0, 1, 2, 3, 4, 5], 2, async (n) => {
      started.push(n);
      if (n === 1) throw new Error('item 1 failed');
      await tick(20);
      ended.push(n);
    });
    await expect(run).rejects.toThrow('item 1 failed');
    // Item 0 was in flight when 1 failed: it ended before the call returned; 2 started beside it, nothing after.
    expect(ended).toContain(0);
    expect(started.length).toBeLessThanOrEqual(3);
    expect(started).not.toContain(5);
    expect(ended.every((n) => started.includes(n))).toBe(true);
    const endedThen = ended.length;
    await tick(50);
    expect(ended.length).toBe(endedThen);
  });

  it('does nothing for no items, and treats a limit below one as one', async () => {
    await expect(mapLimited([], 4, async () => 1)).resolves.toEqual([]);
    let inFlight = 0;
    let most = 0;
    await forEachLimited([1, 2, 3], 0, async () => {
      most = Math.max(most, ++inFlight);
      await tick();
      inFlight--;
    });
    expect(most).toBe(1);
  });
});
