/**
 * Runs `fn` over `items` with at most `limit` calls in flight. After a call fails no further item
 * starts (the ones in flight finish) and the first error is thrown.
 */
export async function forEachLimited<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]();
  let failed = false;
  const worker = async () => {
    while (!failed) {
      const r = it.next();
      if (r.done) return;
      try {
        await fn(r.value);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
}
