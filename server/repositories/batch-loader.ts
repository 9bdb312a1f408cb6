/**
 * Coalesces the lookups made in one turn of the event loop into one call of `load` (issue 10: on
 * PostgreSQL/MariaDB the key API's per-request user read was one round trip each). A batch is sent
 * at the end of the turn (setImmediate), or at once when it reaches `max` keys; a lookup made after
 * that joins the next batch, never one already sent — so a lookup that starts after a write has
 * committed always reads that write (a deactivation refuses the very next request).
 *
 * If a batch of several keys fails, each key is retried alone, so a key that makes the statement
 * fail fails only its own callers.
 *
 * `serial`: at most one batch in flight; lookups made meanwhile wait and go out together when it
 * settles (still a batch not yet sent), at most `max` keys a statement.
 */
export function batchLoader<K, V>(load: (keys: K[]) => Promise<Map<K, V>>, max = 256, opts: { serial?: boolean } = {}): (key: K) => Promise<V | undefined> {
  type Waiter = { resolve: (v: V | undefined) => void; reject: (err: unknown) => void };
  const pending = new Map<K, Waiter[]>();
  let scheduled: NodeJS.Immediate | undefined;

  const settle = (keys: K[], waiters: Map<K, Waiter[]>, found: Map<K, V>) => {
    for (const k of keys) for (const w of waiters.get(k)!) w.resolve(found.get(k));
  };
  const fail = (keys: K[], waiters: Map<K, Waiter[]>, err: unknown) => {
    for (const k of keys) for (const w of waiters.get(k)!) w.reject(err);
  };

  let inFlight = false;
  const flush = () => {
    if (scheduled) clearImmediate(scheduled);
    scheduled = undefined;
    if (pending.size === 0 || (opts.serial && inFlight)) return; // serial: sent when the batch in flight settles
    const keys = [...pending.keys()].slice(0, max);
    const batch = new Map(keys.map((k) => [k, pending.get(k)!]));
    for (const k of keys) pending.delete(k);
    inFlight = true;
    const sent = load(keys).then(
      (found) => settle(keys, batch, found),
      (err: unknown) => {
        if (keys.length === 1) return fail(keys, batch, err);
        for (const k of keys) load([k]).then((found) => settle([k], batch, found), (e: unknown) => fail([k], batch, e));
      },
    );
    if (opts.serial) {
      void sent.finally(() => {
        inFlight = false;
        if (pending.size > 0) flush();
      });
    }
  };

  return (key) =>
    new Promise<V | undefined>((resolve, reject) => {
      const waiters = pending.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else pending.set(key, [{ resolve, reject }]);
      if (pending.size >= max) flush();
      else scheduled ??= setImmediate(flush);
    });
}
