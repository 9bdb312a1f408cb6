import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCheckpointer, SQLITE_DEFAULT_AUTOCHECKPOINT } from '../../server/repositories/sqlite-checkpoint';
import { createTestContext, type TestContext } from '../support/context';
import { verifyAuditChain } from '../../server/audit/verify';

// better-sqlite3 ships no type declarations; these tests need a plain WAL connection.
interface Db {
  pragma(p: string, o?: { simple: boolean }): unknown;
  exec(sql: string): void;
  prepare(sql: string): { run(...a: unknown[]): unknown; get(...a: unknown[]): Record<string, unknown> };
  close(): void;
  readonly open: boolean;
}
const Database = require('better-sqlite3') as new (path: string, o?: { readonly?: boolean }) => Db;
const autocheckpoint = (db: Db) => db.pragma('wal_autocheckpoint', { simple: true });

/**
 * SQLite's WAL checkpoints run on a worker thread (server/repositories/sqlite-checkpoint.ts), so
 * their fsyncs never block the event loop; SQLite-only, as WAL is. What must hold: committed
 * pages reach the database file without the writer checkpointing, the writer keeps a (raised)
 * automatic checkpoint as a bound on the WAL, and its default comes back when the thread is gone.
 */
describe('WAL checkpoints on a worker thread', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cs-ckpt-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const walDb = () => {
    const db = new Database(join(dir, 'x.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
    return db;
  };

  test('the thread copies committed pages into the database file while the writer never checkpoints', async () => {
    const writer = walDb();
    const results: { log: number; checkpointed: number }[] = [];
    // The writer's own checkpoint out of reach: only the thread can backfill.
    const c = startCheckpointer(join(dir, 'x.db'), writer, { intervalMs: 10, writerPages: 1_000_000, onCheckpoint: (r) => results.push(r) });
    expect(autocheckpoint(writer)).toBe(1_000_000);
    const insert = writer.prepare('INSERT INTO t (v) VALUES (?)');
    for (let i = 0; i < 200; i++) insert.run('x'.repeat(2000));
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        const last = results[results.length - 1];
        if (last && last.log > 0 && last.checkpointed === last.log) resolve(clearInterval(poll));
      }, 10);
    });
    // Everything in the WAL is in the database file: a checkpoint from here has nothing left to copy.
    const [mine] = writer.pragma('wal_checkpoint(PASSIVE)') as { log: number; checkpointed: number }[];
    expect(mine!.checkpointed).toBe(mine!.log);
    await c.close();
    expect(autocheckpoint(writer)).toBe(SQLITE_DEFAULT_AUTOCHECKPOINT);
    writer.close();
    const reader = new Database(join(dir, 'x.db'), { readonly: true });
    expect(reader.prepare('SELECT count(*) AS n FROM t').get().n).toBe(200);
    reader.close();
  });

  test('a thread that cannot open the database ends, and the writer gets its default checkpoint back', async () => {
    const writer = walDb();
    const c = startCheckpointer(join(dir, 'missing.db'), writer, { writerPages: 4000 });
    await c.close(); // resolves once the thread has exited
    expect(autocheckpoint(writer)).toBe(SQLITE_DEFAULT_AUTOCHECKPOINT);
    writer.close();
  });
});

describe('the store on SQLite with the checkpoint thread', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
  });
  afterAll(async () => ctx?.cleanup());

  test('the hot path starts it (writer checkpoints raised); group-committed rows verify', async () => {
    const writer = (ctx.store.dataSource.driver as unknown as { databaseConnection: Db }).databaseConnection;
    expect(autocheckpoint(writer)).toBe(SQLITE_DEFAULT_AUTOCHECKPOINT);
    await Promise.all(Array.from({ length: 300 }, (_, i) => ctx.store.auditCommitted({ actor: 'test', action: 'hot.unwrap', outcome: 'success', requestId: `ck-${i}` })));
    expect(autocheckpoint(writer)).toBeGreaterThan(SQLITE_DEFAULT_AUTOCHECKPOINT);
    expect(await verifyAuditChain(ctx.store.dataSource, ctx.kms)).toMatchObject({ ok: true });
    const [{ n }] = (await ctx.store.dataSource.query("SELECT count(*) AS n FROM audit_events WHERE request_id LIKE 'ck-%'")) as { n: number }[];
    expect(n).toBe(300);
  });
});
