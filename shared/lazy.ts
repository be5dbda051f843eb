/**
 * A value built once on first use (a handler's adapters at cold start) that is
 * built again on the next call when building failed: a failed start must not be
 * cached for the life of the container.
 */
export function retryingLazy<T>(build: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= build().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}
