import type { ApiTokenRow } from '../../entities/scim';
import { batchLoader } from '../../server/repositories/batch-loader';
import { connectionLost } from '../../server/repositories/db-errors';
import { databaseUnavailable } from '../../server/repositories/pool-guard';
import type { Store } from '../../server/repositories/store';

/**
 * The token lookup every SCIM and /backend/v1 request makes, straight on the driver (issue 10: the
 * TypeORM findOneBy was a fixed cost of every request). Nothing is cached: on PostgreSQL/MariaDB the
 * lookups of one event-loop turn share one statement (batch-loader.ts: a lookup joins only a batch
 * not yet sent), so a lookup that starts after a revocation has committed reads the revocation.
 * SQLite reads synchronously on a read-only connection, which sees only committed rows.
 */
export type TokenReads = (id: string) => Promise<ApiTokenRow | null>;

const COLUMNS = 'id, name, scope, secret_hash, created_at, last_used_at, expires_at, revoked_at, allowed_addresses';

type Raw = Record<string, unknown>;
interface SqliteDb {
  prepare(sql: string): { get(...params: unknown[]): Raw | undefined };
  pragma(p: string): unknown;
  close(): void;
  readonly open: boolean;
}
type SqliteCtor = new (path: string, opts?: { readonly?: boolean; fileMustExist?: boolean }) => SqliteDb;
interface PgPool {
  query(q: { name?: string; text: string; values: unknown[] }): Promise<{ rows: Raw[] }>;
}
interface MysqlPool {
  execute(sql: string, values: unknown[], cb: (err: Error | null, rows: unknown) => void): void;
}

const str = (v: unknown) => (v == null ? null : String(v));

function rowOf(r: Raw): ApiTokenRow {
  return {
    id: String(r.id),
    name: String(r.name),
    scope: String(r.scope),
    secret_hash: String(r.secret_hash),
    created_at: String(r.created_at),
    last_used_at: str(r.last_used_at),
    expires_at: str(r.expires_at),
    revoked_at: str(r.revoked_at),
    allowed_addresses: str(r.allowed_addresses),
  };
}

function mapped(err: unknown): unknown {
  return connectionLost(err) ? databaseUnavailable(err) : err;
}

/** Batched by id; MariaDB compares ids without case, so rows are matched to callers in lower case. */
function batched(read: (ids: string[]) => Promise<Raw[]>): TokenReads {
  const load = batchLoader<string, ApiTokenRow | null>(async (ids) => {
    const rows = new Map((await read(ids)).map((r) => [String(r.id).toLowerCase(), rowOf(r)]));
    return new Map(ids.map((id) => [id, rows.get(id.toLowerCase()) ?? null]));
  });
  return async (id) => (await load(id)) ?? null;
}

const built = new WeakMap<Store, TokenReads>();

/** The store's token reader (one per store, so every router on it batches together). */
export function tokenReads(store: Store): TokenReads {
  let reads = built.get(store);
  if (!reads) built.set(store, (reads = build(store)));
  return reads;
}

function build(store: Store): TokenReads {
  const driver = store.dataSource.driver as unknown as { databaseConnection?: SqliteDb; master?: PgPool; pool?: MysqlPool };
  if (store.driver === 'better-sqlite3') {
    const writer = driver.databaseConnection!;
    const path = String(store.dataSource.options.database);
    let reader = writer;
    if (path !== ':memory:' && path !== '') {
      const Database = require('better-sqlite3') as SqliteCtor;
      reader = new Database(path, { readonly: true, fileMustExist: true });
      reader.pragma('busy_timeout = 1000');
      const opened = reader;
      store.beforeClose(async () => {
        if (opened.open) opened.close();
      });
    }
    const find = reader.prepare(`SELECT ${COLUMNS} FROM api_tokens WHERE id = ?`);
    return async (id) => {
      const r = find.get(id);
      return r ? rowOf(r) : null;
    };
  }
  if (store.driver === 'postgres') {
    const pool = driver.master!;
    const text = `SELECT ${COLUMNS} FROM api_tokens WHERE id = ANY($1::varchar[])`;
    return batched(async (ids) => {
      try {
        return (await pool.query({ name: 'cs_token_reads_any', text, values: [ids] })).rows;
      } catch (err) {
        throw mapped(err);
      }
    });
  }
  const pool = driver.pool!;
  // Prepared per arity: batches are padded (repeating an id) to a power of two.
  const findIn = (n: number) => `SELECT ${COLUMNS} FROM api_tokens WHERE id IN (${Array(n).fill('?').join(', ')})`;
  return batched(async (ids) => {
    const n = 2 ** Math.ceil(Math.log2(ids.length));
    return new Promise<Raw[]>((resolve, reject) =>
      pool.execute(findIn(n), [...ids, ...Array<string>(n - ids.length).fill(ids[0]!)], (err, rows) => (err ? reject(mapped(err)) : resolve(rows as Raw[]))),
    );
  });
}
