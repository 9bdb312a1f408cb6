/**
 * The two coalescers in front of every SCIM request (issue 10), driven by a hand-controlled
 * "database": a token lookup only ever joins a batch not yet sent (so one that starts after a
 * revocation committed reads it), and coalesced rate-limit hits each get their exact place.
 */
import { serialBatches } from '../../scim/repositories/token-reads';
import { coalescedHits } from '../../server/repositories/rate-limit-hits';

/** A statement the test answers by hand. */
type Call<A, R> = { args: A; resolve: (r: R) => void; reject: (e: unknown) => void };
function controlled<A, R>() {
  const calls: Call<A, R>[] = [];
  const fn = (args: A) => new Promise<R>((resolve, reject) => calls.push({ args, resolve, reject }));
  return { calls, fn };
}
const turn = () => new Promise((r) => setImmediate(r));
const row = (id: string, revoked: string | null) => ({ id, name: 'idp', scope: 'scim', secret_hash: 'h', created_at: 't', last_used_at: null, expires_at: null, revoked_at: revoked });

describe('token lookups (serialBatches)', () => {
  test('a lookup made while a batch is in flight goes in the next statement, never the one already sent', async () => {
    const db = controlled<string[], Record<string, unknown>[]>();
    const read = serialBatches(db.fn);
    const first = read('a');
    await turn();
    expect(db.calls.map((c) => c.args)).toEqual([['a']]);
    // The revocation commits now; these lookups start after it.
    const later = [read('a'), read('b'), read('a')];
    await turn();
    expect(db.calls).toHaveLength(1); // waiting for the batch in flight, not joining it
    db.calls[0].resolve([row('a', null)]);
    expect(await first).toMatchObject({ id: 'a', revoked_at: null });
    await turn();
    expect(db.calls.map((c) => c.args)).toEqual([['a'], ['a', 'b']]);
    db.calls[1].resolve([row('A', '2026-01-01T00:00:00.000Z')]); // MariaDB may answer in another case
    const [a1, b, a2] = await Promise.all(later);
    expect(a1).toMatchObject({ id: 'A', revoked_at: '2026-01-01T00:00:00.000Z' });
    expect(a2).toEqual(a1);
    expect(b).toBeNull();
  });

  test('a failed statement fails its own callers only; the next batch still goes out', async () => {
    const db = controlled<string[], Record<string, unknown>[]>();
    const read = serialBatches(db.fn);
    const failed = read('a');
    await turn();
    const next = read('a');
    db.calls[0].reject(new Error('connection lost'));
    await expect(failed).rejects.toThrow('connection lost');
    await turn();
    db.calls[1].resolve([row('a', null)]);
    expect(await next).toMatchObject({ id: 'a' });
  });

  test('at most 256 ids a statement', async () => {
    const db = controlled<string[], Record<string, unknown>[]>();
    const read = serialBatches(db.fn);
    const all = Array.from({ length: 300 }, (_, i) => read(`id${i}`));
    await turn();
    expect(db.calls.map((c) => c.args.length)).toEqual([256]);
    db.calls[0].resolve([]);
    await turn();
    expect(db.calls.map((c) => c.args.length)).toEqual([256, 44]);
    db.calls[1].resolve([]);
    expect(new Set(await Promise.all(all))).toEqual(new Set([null]));
  });
});

describe('rate-limit hits (coalescedHits)', () => {
  test('hits arriving while a write is in flight go out as one statement adding n; each gets its exact place', async () => {
    const db = controlled<[string, number, number], number>();
    const hit = coalescedHits((bucket, window, n) => db.fn([bucket, window, n]));
    const first = [hit('scim:t', 7), hit('scim:t', 7)];
    const other = hit('scim:u', 7); // another bucket: its own statement
    await turn();
    expect(db.calls.map((c) => c.args)).toEqual([
      ['scim:t', 7, 2],
      ['scim:u', 7, 1],
    ]);
    const second = [hit('scim:t', 7), hit('scim:t', 7), hit('scim:t', 7)];
    await turn();
    expect(db.calls).toHaveLength(2); // waits for scim:t's write in flight
    db.calls[0].resolve(12); // another replica had counted 10 before
    db.calls[1].resolve(1);
    expect(await Promise.all(first)).toEqual([11, 12]);
    expect(await other).toBe(1);
    await turn();
    expect(db.calls[2].args).toEqual(['scim:t', 7, 3]);
    db.calls[2].resolve(20); // and 5 more meanwhile
    expect(await Promise.all(second)).toEqual([18, 19, 20]);
  });

  test('a failed write fails its own hits; the hits after it still count', async () => {
    const db = controlled<[string, number, number], number>();
    const hit = coalescedHits((bucket, window, n) => db.fn([bucket, window, n]));
    const failed = hit('scim:t', 7);
    await turn();
    const next = hit('scim:t', 7);
    db.calls[0].reject(new Error('connection lost'));
    await expect(failed).rejects.toThrow('connection lost');
    await turn();
    db.calls[1].resolve(1);
    expect(await next).toBe(1);
  });
});
