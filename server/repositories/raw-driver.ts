import { createHash } from 'node:crypto';
import type { Store } from './store';
import { databaseUnavailable } from './pool-guard';
import { connectionLost } from './db-errors';

/**
 * What the statements run straight on the driver (hot-queries.ts, rate-limit-hits.ts,
 * scim/repositories/token-reads.ts) need of the three drivers TypeORM holds, and the error mapping
 * they share with the TypeORM path.
 */
export type Raw = Record<string, unknown>;

/** better-sqlite3's surface used here (the package ships no types). */
export interface SqliteStatement {
  get(...params: unknown[]): Raw | undefined;
  run(...params: unknown[]): unknown;
}
export interface SqliteDb {
  prepare(sql: string): SqliteStatement;
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  pragma(p: string, opts?: { simple: true }): unknown;
  close(): void;
  readonly open: boolean;
  /** SQLite's autocommit flag inverted: a BEGIN (ours or TypeORM's) is open on this connection. */
  readonly inTransaction: boolean;
}
export type SqliteCtor = new (path: string, opts?: { readonly?: boolean; fileMustExist?: boolean }) => SqliteDb;

/** A client checked out of the pg pool (one transaction's connection). */
export interface PgClient {
  query(q: string | { name?: string; text: string; values: unknown[] }): Promise<{ rows: Raw[] } | { rows: Raw[] }[]>;
  on(event: 'error', fn: (err: Error) => void): void;
  off(event: 'error', fn: (err: Error) => void): void;
}
export interface PgPool {
  query(q: { name?: string; text: string; values: unknown[] }): Promise<{ rows: Raw[] }>;
  connect(cb: (err: Error | null, client: PgClient, release: (err?: unknown) => void) => void): void;
}
/** A connection checked out of the mysql2 pool (one transaction's connection). */
export interface MysqlConnection {
  query(sql: string, values: unknown[], cb: (err: Error | null, result: unknown) => void): void;
  release(): void;
  destroy(): void;
}
export interface MysqlPool {
  execute(sql: string, values: unknown[], cb: (err: Error | null, result: unknown) => void): void;
  getConnection(cb: (err: Error | null, conn: MysqlConnection) => void): void;
}

/** The store's driver handles (the SQLite connection, the pg or mysql2 pool). */
export function driverOf(store: Store): { sqlite?: SqliteDb; pg?: PgPool; mysql?: MysqlPool } {
  const d = store.dataSource.driver as unknown as { databaseConnection?: SqliteDb; master?: PgPool; pool?: MysqlPool };
  if (store.driver === 'better-sqlite3') return { sqlite: d.databaseConnection };
  return store.driver === 'postgres' ? { pg: d.master } : { mysql: d.pool };
}

/**
 * A read on the one connection of an in-memory SQLite database (reads and writes share it), never
 * inside another call chain's open transaction: it would see that transaction's uncommitted rows.
 * The check and the read are one synchronous step (no BEGIN can come between them); otherwise the
 * read waits for the store's next turn, after that transaction has ended.
 */
export async function committedRead<T>(store: Pick<Store, 'inTransaction' | 'transaction'>, sqlite: Pick<SqliteDb, 'inTransaction'>, read: () => T): Promise<T> {
  return sqlite.inTransaction && !store.inTransaction ? store.transaction(async () => read()) : read();
}

/** A lost connection becomes the 503 the TypeORM path gives (pool-guard.ts); other errors pass. */
export function mappedDbError(err: unknown): unknown {
  return connectionLost(err) ? databaseUnavailable(err) : err;
}

/** Runs a pg pool statement (named: parsed and planned once per connection); errors mapped as above. */
export async function pgQuery(pool: PgPool, q: { name?: string; text: string; values: unknown[] }): Promise<Raw[]> {
  try {
    return (await pool.query(q)).rows;
  } catch (err) {
    throw mappedDbError(err);
  }
}

/** Runs a mysql2 pool statement (prepared, cached per connection); errors mapped as above. */
export function mysqlExecute(pool: MysqlPool, sql: string, values: unknown[]): Promise<unknown> {
  return new Promise((resolve, reject) => pool.execute(sql, values, (err, r) => (err ? reject(mappedDbError(err)) : resolve(r))));
}

/** `build` once per store, on first call: every router and limiter on one store shares its statements and batches. */
export function perStore<T>(build: (store: Store) => T): (store: Store) => T {
  const built = new WeakMap<Store, T>();
  return (store) => {
    let v = built.get(store);
    if (v === undefined) built.set(store, (v = build(store)));
    return v;
  };
}

/**
 * `IN (?, …)` over ids for MariaDB's prepared statements, padded (repeating the first id) to a power
 * of two, so a handful of statements cover every batch size.
 */
export function paddedInList(ids: readonly string[]): { placeholders: string; values: string[] } {
  const n = 2 ** Math.ceil(Math.log2(ids.length));
  return { placeholders: Array(n).fill('?').join(', '), values: [...ids, ...Array<string>(n - ids.length).fill(ids[0]!)] };
}

/** At most this many statement texts are named per process: a few filter shapes cover the IdPs' traffic. */
export const MAX_NAMED_STATEMENTS = 64;
const statementNames = new Map<string, string>();

/**
 * A pg statement name for this SQL text, so each pooled connection parses and plans it once (the
 * plan of a SCIM filter page cost PostgreSQL ≈0.5 ms, more than running it). Names are bounded:
 * any client can send new filter shapes, and each named text stays prepared on every connection,
 * so past MAX_NAMED_STATEMENTS texts the rest run unnamed, as before.
 */
export function pgStatementName(text: string): string | undefined {
  let name = statementNames.get(text);
  if (name === undefined && statementNames.size < MAX_NAMED_STATEMENTS) {
    name = `cs_q_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name;
}
