/**
 * One run of `fn` shared by every caller for `ttlMs` (a rejection too, so nobody sees it
 * unhandled): unauthenticated probes and dashboard reloads must not each cost a KMS round trip,
 * yet a KMS that stops answering shows once the shared result is older than `ttlMs`.
 */
export function sharedFor<T>(ttlMs: number, fn: () => Promise<T>, now: () => number = Date.now): () => Promise<T> {
  let last: { at: number; result: Promise<T> } | undefined;
  return () => {
    const t = now();
    if (!last || t - last.at >= ttlMs) {
      last = { at: t, result: fn() };
      last.result.catch(() => undefined);
    }
    return last.result;
  };
}
