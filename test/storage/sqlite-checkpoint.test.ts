import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from 'prom-client';
import { startCheckpointer, SQLITE_DEFAULT_AUTOCHECKPOINT } from '../../server/repositories/sqlite-checkpoint';
import { recordingLog, until } from '../audit/forward-support';
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
const failuresCounted = async () => (await register.getSingleMetric('crypto_server_sqlite_checkpoint_failures_total')!.get()).values[0]?.value ?? 0;

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

  test('a checkpoint that keeps failing is counted and warned about once, not at every tick; its recovery is logged', async () => {
    const writer = walDb();
    const log = recordingLog();
    // A real SQLite failure at every checkpoint: the thread's file is not a database (SQLITE_NOTADB).
    const broken = join(dir, 'broken.db');
    writeFileSync(broken, Buffer.alloc(8192, 7));
    const before = await failuresCounted();
    const c = startCheckpointer(broken, writer, { intervalMs: 10, warnEveryMs: 3_600_000, log });
    await until('failures counted', async () => (await failuresCounted()) >= before + 5);
    expect(log.lines).toEqual([{ level: 'warn', obj: { error: 'SQLITE_NOTADB: file is not a database', failuresSinceLastWarning: 1 }, msg: expect.stringMatching(/checkpoint failed; the writer's own checkpoint \(every 4000 pages\) bounds the WAL/) }]);
    // The file is fixed (an empty file is an empty database): checkpoints succeed again, one line says so.
    truncateSync(broken, 0);
    await until('the recovery line', () => log.lines.length > 1);
    expect(log.lines[1]).toEqual({ level: 'info', obj: { failures: expect.any(Number) }, msg: 'SQLite WAL checkpoints succeed again' });
    expect((log.lines[1].obj.failures as number) >= 5).toBe(true);
    await c.close();
    expect(log.lines).toHaveLength(2); // a requested stop is not a failure
    writer.close();
  });

  test('a thread that cannot open the database ends: warned, counted, and the writer gets its default checkpoint back', async () => {
    const writer = walDb();
    const log = recordingLog();
    const before = await failuresCounted();
    const c = startCheckpointer(join(dir, 'missing.db'), writer, { writerPages: 4000, log });
    expect(autocheckpoint(writer)).toBe(4000);
    await until('the thread to end', () => log.lines.length > 0);
    expect(log.lines).toEqual([{ level: 'warn', obj: { error: expect.stringMatching(/^SQLITE_CANTOPEN/) }, msg: expect.stringMatching(/^SQLite checkpoint thread ended; the writer checkpoints on its own again \(every 1000 pages/) }]);
    expect(autocheckpoint(writer)).toBe(SQLITE_DEFAULT_AUTOCHECKPOINT);
    expect(await failuresCounted()).toBe(before + 1);
    await c.close(); // resolves at once: the thread has exited
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
