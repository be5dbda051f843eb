import pLimit from 'p-limit';

/**
 * Runs `work` over `items` with at most `limit` calls in flight (p-limit keeps the
 * queue), in order of start; resolves when every started call has ended. The first
 * failure stops new starts (the items after it return without running) and is thrown
 * once the calls in flight have ended, so nothing outlives the call.
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  const run = pLimit(Math.max(1, limit));
  let failure: { error: unknown } | undefined;
  await Promise.all(
    items.map((item, i) =>
      run(async () => {
        if (failure) return;
        try {
          await work(item, i);
        } catch (error) {
          failure ??= { error };
        }
      }),
    ),
  );
  if (failure) throw failure.error;
}

/** `work` over `items` with at most `limit` calls in flight; results in `items` order. The first failure rejects once the calls in flight have ended. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  await forEachLimited(items, limit, async (item, i) => {
    results[i] = await work(item, i);
  });
  return results;
}
