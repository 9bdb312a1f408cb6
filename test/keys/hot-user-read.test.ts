import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';

/**
 * The key API's user read (hot-queries.ts, userWithKeys) sees committed rows only. On SQLite it
 * reads on the writer connection when no transaction is open there (its page cache stays warm),
 * and on the read-only connection while one is: a transaction another request has open on the
 * writer must stay invisible until it commits.
 */
describe.each(testDatabaseNames())('hot user read (%s)', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  const op = { actor: 'test' };
  const read = async (id: string) => {
    const found = await ctx.store.hot.userWithKeys(id);
    return found && { active: found.active, hasKeys: found.keys !== null };
  };

  test('a transaction open on the writer is not seen until it commits; then it is', async () => {
    const deactivated = (await ctx.keys.provisionUser({ userName: 'hot-read-a@example.com' }, op)).id;
    const deleted = (await ctx.keys.provisionUser({ userName: 'hot-read-b@example.com' }, op)).id;

    let inside!: () => void;
    const changed = new Promise<void>((resolve) => (inside = resolve));
    let commit!: () => void;
    const held = new Promise<void>((resolve) => (commit = resolve));
    const tx = ctx.store.transaction(async (t) => {
      await t.users.update(deactivated, { active: false }, new Date().toISOString());
      await t.users.delete(deleted);
      inside();
      await held;
    });
    await changed;
    try {
      expect(await read(deactivated)).toEqual({ active: true, hasKeys: true });
      expect(await read(deleted)).toEqual({ active: true, hasKeys: true });
    } finally {
      commit();
      await tx;
    }

    expect(await read(deactivated)).toEqual({ active: false, hasKeys: true });
    expect(await read(deleted)).toBeNull();
  });

  test('a row committed by the audit writer is followed by reads that see it', async () => {
    const id = (await ctx.keys.provisionUser({ userName: 'hot-read-c@example.com' }, op)).id;
    await ctx.keys.unwrapPasswordKey(id, { actor: `user:${id}`, requestId: 'hot-read' });
    await ctx.store.transaction((t) => t.users.update(id, { active: false }, new Date().toISOString()));
    expect(await read(id)).toEqual({ active: false, hasKeys: true });
  });
});

/**
 * In memory there is no second connection: reads and writes share the one. A read made while
 * another request's transaction is open waits for it to end instead of seeing its rows, and a
 * transaction that rolls back leaves the user as it was.
 */
describe('hot user read on in-memory SQLite, beside an open transaction', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite', { CS_DATABASE_URL: 'sqlite::memory:' });
  });
  afterAll(async () => ctx?.cleanup());

  /** Resolves once every callback queued so far (I/O and timers included) has run. */
  const turnOfTheLoop = () => new Promise((r) => setImmediate(r));

  test('a deactivation that rolls back is never read, and a committed one is read after its commit', async () => {
    const op = { actor: 'test' };
    const id = (await ctx.keys.provisionUser({ userName: 'hot-read-memory@example.com' }, op)).id;
    const hold = () => {
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let inside!: () => void;
      const changed = new Promise<void>((r) => (inside = r));
      return { gate, release, changed, inside };
    };

    const rolled = hold();
    const tx = ctx.store.transaction(async (t) => {
      await t.users.update(id, { active: false }, new Date().toISOString());
      rolled.inside();
      await rolled.gate;
      throw new Error('rolled back');
    });
    await rolled.changed;
    let seen: unknown = 'pending';
    const read = ctx.store.hot.userWithKeys(id).then((u) => (seen = u?.active));
    await turnOfTheLoop();
    expect(seen).toBe('pending');
    rolled.release();
    await expect(tx).rejects.toThrow('rolled back');
    await read;
    expect(seen).toBe(true);

    const committed = hold();
    const tx2 = ctx.store.transaction(async (t) => {
      await t.users.update(id, { active: false }, new Date().toISOString());
      committed.inside();
      await committed.gate;
    });
    await committed.changed;
    const after = ctx.store.hot.userWithKeys(id);
    committed.release();
    await tx2;
    expect((await after)?.active).toBe(false);
  });
});
