import { SessionPool } from '../../kms-adapters/pkcs11-session-pool';
import { KmsUnavailableError, UnwrapRefusedError } from '../../server/errors';

/** The pool on its own, with numbered fake sessions that record overlapping use. */
function fakePool(size: number, failOpen = () => false) {
  let next = 0;
  const busy = new Set<number>();
  const closed: number[] = [];
  let overlaps = 0;
  const pool = new SessionPool<number>(
    size,
    () => {
      if (failOpen()) throw new KmsUnavailableError('token gone');
      return ++next;
    },
    (s) => closed.push(s),
  );
  const use = (fail?: unknown) =>
    pool.run(async (s) => {
      if (busy.has(s)) overlaps++;
      busy.add(s);
      await new Promise((r) => setTimeout(r, 1));
      busy.delete(s);
      if (fail) throw fail;
      return s;
    });
  return { pool, use, closed, opened: () => next, overlaps: () => overlaps };
}

describe('pkcs11 session pool', () => {
  test('never lends one session to two callers, never opens more than its size, reuses sessions', async () => {
    const f = fakePool(3);
    const used = await Promise.all(Array.from({ length: 50 }, () => f.use()));
    expect(f.overlaps()).toBe(0);
    expect(f.opened()).toBe(3);
    expect(new Set(used).size).toBe(3);
  });

  test('keeps a session after a refused unwrap, closes it after any other error', async () => {
    const f = fakePool(1);
    await expect(f.use(new UnwrapRefusedError('tag'))).rejects.toBeInstanceOf(UnwrapRefusedError);
    expect(f.closed).toEqual([]);
    await expect(f.use(new Error('CKR_OPERATION_ACTIVE'))).rejects.toThrow();
    expect(f.closed).toEqual([1]);
    expect(await f.use()).toBe(2);
  });

  test('when reopening fails, every waiter is answered instead of hanging', async () => {
    let down = false;
    const f = fakePool(1, () => down);
    const first = f.use(new Error('CKR_DEVICE_REMOVED'));
    const waiting = [f.use(), f.use(), f.use()];
    down = true;
    await expect(first).rejects.toThrow();
    for (const w of waiting) await expect(w).rejects.toBeInstanceOf(KmsUnavailableError);
    down = false;
    await expect(f.use()).resolves.toBe(2);
  });

  test('reset closes idle sessions now and borrowed ones on return; close waits for them', async () => {
    const f = fakePool(2);
    await Promise.all([f.use(), f.use()]);
    const inFlight = f.use();
    f.pool.reset();
    expect(f.closed).toHaveLength(1);
    await inFlight;
    expect(f.closed).toHaveLength(2);
    const late = f.use();
    const closing = f.pool.close();
    await late;
    await closing;
    expect(f.pool.openCount).toBe(0);
    await expect(f.use()).rejects.toBeInstanceOf(KmsUnavailableError);
  });
});
