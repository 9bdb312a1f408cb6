import { openStore } from '../../server/boot';
import { loadConfig } from '../../server/config';
import type { Store } from '../../server/repositories/store';
import { createSqlite, type TestDatabase } from '../support/databases';

/**
 * Two processes on one SQLite file (CS_WORKERS, or the CLI beside a server) — here two stores, each
 * with its own connection. A transaction that reads and then writes must not be failed by the other
 * process committing in between (SQLite answers a deferred transaction's late write with
 * SQLITE_BUSY at once: 12 concurrent group re-keys over two workers got a 503 now and then). Every
 * store transaction holds the write lock from its first statement, so the other process waits for
 * it (here past its busy_timeout: refused) instead.
 */
describe('SQLite transactions across processes', () => {
  let db: TestDatabase;
  let a: Store;
  let b: Store;
  beforeAll(async () => {
    db = await createSqlite();
    a = await openStore(loadConfig({ CS_DATABASE_URL: db.url }));
    await a.migrate();
    // The other process gives up on the lock after 200 ms (busy_timeout = CS_DB_ACQUIRE_TIMEOUT_MS).
    b = await openStore(loadConfig({ CS_DATABASE_URL: db.url, CS_DB_ACQUIRE_TIMEOUT_MS: '200' }));
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await db?.drop();
  });

  const actions = async () => (await a.repos.audit.recent(10)).map((e) => e.action);

  test("a transaction that reads, then writes after another process tried to commit, commits; the other process's write waits for it", async () => {
    let other: unknown;
    await a.transaction(async (t) => {
      await t.users.count();
      other = await b.transaction((u) => u.audit.append({ actor: 'b', action: 'other.process', outcome: 'success' })).then(() => 'committed', (err: unknown) => err);
      await t.audit.append({ actor: 'a', action: 'read.then.write', outcome: 'success' });
    });
    expect(other).toMatchObject({ status: 503, message: 'the database is busy; retry later' });
    expect(await actions()).toContain('read.then.write');
    // Once the first transaction committed, the other process's retry goes through.
    await b.transaction((u) => u.audit.append({ actor: 'b', action: 'other.process', outcome: 'success' }));
    expect(await actions()).toEqual(expect.arrayContaining(['read.then.write', 'other.process']));
  });
});
