import type { Store } from './store';
import { databaseUnavailable, sqliteLocked } from './pool-guard';
import { connectionLost, sqliteBusy } from './db-errors';

/**
 * Rate-limit counting straight on the driver (issue 10: the TypeORM path took an UPDATE, sometimes
 * an INSERT, then a SELECT per request). The hits of one bucket that arrive while its previous
 * write is in flight (or within one event-loop turn) go out as ONE statement that adds n and
 * returns the new total T; the k-th of those callers gets T − n + k. The statement is atomic in the
 * database, so every hit still gets its own exact place in the window's count, across processes
 * and replicas.
 */
export interface RateLimitHits {
  /** Counts one hit in (bucket, window) and resolves to its place in the window's count (1 = first). */
  hit(bucket: string, window: number): Promise<number>;
  /** Drops the counters of windows before `window`. */
  deleteOlderThan(window: number): Promise<void>;
}

/** Adds `n` hits to (bucket, window) in one statement and returns the window's new total. */
export type AddHits = (bucket: string, window: number, n: number) => Promise<number>;

type Waiter = { resolve: (place: number) => void; reject: (err: unknown) => void };
type Pending = { bucket: string; window: number; waiters: Waiter[] };

/** One statement in flight per (bucket, window); hits arriving meanwhile wait and go out together. */
export function coalescedHits(add: AddHits): RateLimitHits['hit'] {
  const pending = new Map<string, Pending>();
  const inFlight = new Set<string>();

  const send = (key: string) => {
    const batch = pending.get(key);
    if (!batch) return;
    pending.delete(key);
    inFlight.add(key);
    const n = batch.waiters.length;
    add(batch.bucket, batch.window, n).then(
      (total) => batch.waiters.forEach((w, i) => w.resolve(total - n + i + 1)),
      (err: unknown) => batch.waiters.forEach((w) => w.reject(err)),
    ).finally(() => {
      inFlight.delete(key);
      send(key);
    });
  };

  return (bucket, window) =>
    new Promise<number>((resolve, reject) => {
      const key = `${window}\n${bucket}`;
      const batch = pending.get(key);
      if (batch) return void batch.waiters.push({ resolve, reject });
      pending.set(key, { bucket, window, waiters: [{ resolve, reject }] });
      // While a write is in flight its completion sends this batch; otherwise the end of the turn does.
      if (!inFlight.has(key)) setImmediate(() => send(key));
    });
}

type Raw = Record<string, unknown>;
interface SqliteStatement {
  get(...params: unknown[]): Raw | undefined;
  run(...params: unknown[]): unknown;
}
interface SqliteDb {
  prepare(sql: string): SqliteStatement;
  pragma(p: string, opts: { simple: true }): unknown;
  readonly inTransaction: boolean;
}
interface PgPool {
  query(q: { name?: string; text: string; values: unknown[] }): Promise<{ rows: Raw[] }>;
}
interface MysqlPool {
  execute(sql: string, values: unknown[], cb: (err: Error | null, result: unknown) => void): void;
}

const TABLE = 'rate_limit_counters';
const UPSERT_RETURNING = `INSERT INTO ${TABLE} (bucket, window_start, hits) VALUES (?, ?, ?)
  ON CONFLICT (bucket, window_start) DO UPDATE SET hits = ${TABLE}.hits + excluded.hits RETURNING hits`;
// MariaDB has no RETURNING on upserts: LAST_INSERT_ID(expr) puts the row's new total in the OK
// packet's insert id (the table has no AUTO_INCREMENT column), on the insert and the update path.
const UPSERT_MYSQL = `INSERT INTO ${TABLE} (bucket, window_start, hits) VALUES (?, ?, LAST_INSERT_ID(?))
  ON DUPLICATE KEY UPDATE hits = LAST_INSERT_ID(hits + VALUES(hits))`;
const DELETE_OLD = `DELETE FROM ${TABLE} WHERE window_start < ?`;

const pgParams = (sql: string) => {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
};

function mapped(err: unknown): unknown {
  return connectionLost(err) ? databaseUnavailable(err) : err;
}

const built = new WeakMap<Store, RateLimitHits>();

/** The store's rate-limit counters (one per store, so every limiter on it coalesces together). */
export function rateLimitHits(store: Store): RateLimitHits {
  let hits = built.get(store);
  if (!hits) built.set(store, (hits = build(store)));
  return hits;
}

function build(store: Store): RateLimitHits {
  const driver = store.dataSource.driver as unknown as { databaseConnection?: SqliteDb; master?: PgPool; pool?: MysqlPool };
  let add: AddHits;
  let prune: (window: number) => Promise<void>;
  if (store.driver === 'better-sqlite3') {
    const db = driver.databaseConnection!;
    const upsert = db.prepare(UPSERT_RETURNING);
    const del = db.prepare(DELETE_OLD);
    const busyMs = Number(db.pragma('busy_timeout', { simple: true }));
    // One synchronous autocommit statement when no transaction is open on the single connection
    // (nothing can interleave with it); otherwise in the store's next write turn, so it never
    // lands inside (and rolls back with) another request's transaction.
    // The check and the statement run in one synchronous step, so no BEGIN can come between them.
    const write = <T>(fn: () => T): Promise<T> => {
      const now = () => {
        try {
          return fn();
        } catch (err) {
          throw sqliteBusy(err) ? sqliteLocked(busyMs) : err;
        }
      };
      if (db.inTransaction) return store.transaction(async () => now());
      try {
        return Promise.resolve(now());
      } catch (err) {
        return Promise.reject(err);
      }
    };
    add = (bucket, window, n) => write(() => Number(upsert.get(bucket, window, n)!.hits));
    prune = (window) => write(() => void del.run(window));
  } else if (store.driver === 'postgres') {
    const pool = driver.master!;
    const upsert = pgParams(UPSERT_RETURNING);
    const del = pgParams(DELETE_OLD);
    add = async (bucket, window, n) => {
      try {
        return Number((await pool.query({ name: 'cs_rate_limit_add', text: upsert, values: [bucket, window, n] })).rows[0]!.hits);
      } catch (err) {
        throw mapped(err);
      }
    };
    prune = async (window) => {
      try {
        await pool.query({ text: del, values: [window] });
      } catch (err) {
        throw mapped(err);
      }
    };
  } else {
    const pool = driver.pool!;
    const exec = (sql: string, values: unknown[]) =>
      new Promise<unknown>((resolve, reject) => pool.execute(sql, values, (err, r) => (err ? reject(mapped(err)) : resolve(r))));
    add = async (bucket, window, n) => Number(((await exec(UPSERT_MYSQL, [bucket, window, n])) as { insertId: number | string }).insertId);
    prune = async (window) => void (await exec(DELETE_OLD, [window]));
  }
  return { hit: coalescedHits(add), deleteOlderThan: prune };
}
