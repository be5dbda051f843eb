import { describe, expect, it } from 'vitest';
import { retryingLazy } from '../../shared/lazy.js';

describe('retryingLazy', () => {
  it('builds once while building succeeds, and again after a failed build', async () => {
    // Prepare: the first build fails (a cold start that could not reach its bucket), the next ones succeed.
    let calls = 0;
    const get = retryingLazy(async () => {
      calls++;
      if (calls === 1) throw new Error('cold start failed');
      return { built: calls };
    });

    // Act
    const first = get();
    await expect(first).rejects.toThrow('cold start failed');
    const second = await get();
    const third = await get();

    // Assess
    expect(second).toEqual({ built: 2 });
    expect(third).toBe(second);
    expect(calls).toBe(2);
  });
});
