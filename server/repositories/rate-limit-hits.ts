import type { Store } from './store';
import { sqliteLocked } from './pool-guard';
import { sqliteBusy } from './db-errors';
import { driverOf, mysqlExecute, perStore, pgQuery } from './raw-driver';

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

const TABLE = 'rate_limit_counters';
const UPSERT_SQLITE = `INSERT INTO ${TABLE} (bucket, window_start, hits) VALUES (?, ?, ?)
  ON CONFLICT (bucket, window_start) DO UPDATE SET hits = ${TABLE}.hits + excluded.hits RETURNING hits`;
// MariaDB has no RETURNING on upserts: LAST_INSERT_ID(expr) puts the row's new total in the OK
// packet's insert id (the table has no AUTO_INCREMENT column), on the insert and the update path.
const UPSERT_MYSQL = `INSERT INTO ${TABLE} (bucket, window_start, hits) VALUES (?, ?, LAST_INSERT_ID(?))
  ON DUPLICATE KEY UPDATE hits = LAST_INSERT_ID(hits + VALUES(hits))`;
const DELETE_OLD = `DELETE FROM ${TABLE} WHERE window_start < ?`;

/**
 * PostgreSQL: the counters commit without waiting for the WAL flush (an fdatasync of ≈2.4 ms on the
 * development machine, 25 times the upsert itself, that every SCIM request waited for).
 * `set_config(…, true)` turns synchronous_commit off for the statement's own transaction only —
 * still one prepared statement, one round trip — and PostgreSQL reads it at commit. Crash-safe:
 * a crash of PostgreSQL or its host can lose the last few hundred ms of hits (3 × wal_writer_delay
 * at most), which only lets a client that many more requests in that minute; every other write
 * (audit rows first) keeps the server's durable commit (docs/operations.md).
 */
const ASYNC_COMMIT = `(SELECT set_config('synchronous_commit', 'off', true)) async_commit`;
const UPSERT_PG = `INSERT INTO ${TABLE} (bucket, window_start, hits) SELECT $1, $2, $3 FROM ${ASYNC_COMMIT}
  ON CONFLICT (bucket, window_start) DO UPDATE SET hits = ${TABLE}.hits + excluded.hits RETURNING hits`;
const DELETE_OLD_PG = `DELETE FROM ${TABLE} USING ${ASYNC_COMMIT} WHERE window_start < $1`;

/**
 * The store's rate-limit counters: one set per store, so every limiter on it coalesces together;
 * its statements are prepared on first use (routes are built before anything is queried).
 */
export function rateLimitHits(store: Store): RateLimitHits {
  return { hit: (bucket, window) => hitsOf(store).hit(bucket, window), deleteOlderThan: (window) => hitsOf(store).deleteOlderThan(window) };
}
const hitsOf = perStore(build);

function build(store: Store): RateLimitHits {
  const { sqlite, pg, mysql } = driverOf(store);
  let add: AddHits;
  let prune: (window: number) => Promise<void>;
  if (sqlite) {
    const upsert = sqlite.prepare(UPSERT_SQLITE);
    const del = sqlite.prepare(DELETE_OLD);
    const busyMs = Number(sqlite.pragma('busy_timeout', { simple: true }));
    // One synchronous autocommit statement when no transaction is open on the single connection
    // (the check and the statement are one synchronous step: no BEGIN can come between them);
    // otherwise in the store's next write turn, so it never lands inside (and rolls back with)
    // another request's transaction.
    const write = <T>(fn: () => T): Promise<T> => {
      const now = () => {
        try {
          return fn();
        } catch (err) {
          throw sqliteBusy(err) ? sqliteLocked(busyMs) : err;
        }
      };
      if (sqlite.inTransaction) return store.transaction(async () => now());
      try {
        return Promise.resolve(now());
      } catch (err) {
        return Promise.reject(err);
      }
    };
    add = (bucket, window, n) => write(() => Number(upsert.get(bucket, window, n)!.hits));
    prune = (window) => write(() => void del.run(window));
  } else if (pg) {
    add = async (bucket, window, n) => Number((await pgQuery(pg, { name: 'cs_rate_limit_add', text: UPSERT_PG, values: [bucket, window, n] }))[0]!.hits);
    prune = async (window) => void (await pgQuery(pg, { text: DELETE_OLD_PG, values: [window] }));
  } else {
    const pool = mysql!;
    add = async (bucket, window, n) => Number(((await mysqlExecute(pool, UPSERT_MYSQL, [bucket, window, n])) as { insertId: number | string }).insertId);
    prune = async (window) => void (await mysqlExecute(pool, DELETE_OLD, [window]));
  }
  return { hit: coalescedHits(add), deleteOlderThan: prune };
}
