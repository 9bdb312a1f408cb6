import type { ApiTokenRow } from '../../entities/scim';
import { batchLoader } from '../../server/repositories/batch-loader';
import { driverOf, mysqlExecute, perStore, pgQuery, type Raw, type SqliteCtor } from '../../server/repositories/raw-driver';
import type { Store } from '../../server/repositories/store';

/**
 * The token lookup every SCIM and /backend/v1 request makes, straight on the driver (issue 10: the
 * TypeORM findOneBy was a fixed cost of every request). Nothing is cached: on PostgreSQL/MariaDB the
 * lookups of one event-loop turn share one statement (batch-loader.ts: a lookup joins only a batch
 * not yet sent), so a lookup that starts after a revocation has committed reads the revocation.
 * SQLite reads synchronously, on a read-only connection that sees only committed rows.
 */
export type TokenReads = (id: string) => Promise<ApiTokenRow | null>;

const COLUMNS = 'id, name, scope, secret_hash, created_at, last_used_at, expires_at, revoked_at, allowed_addresses';

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

/** Batched by id; MariaDB compares ids without case, so rows are matched to callers in lower case. */
function batched(read: (ids: string[]) => Promise<Raw[]>): TokenReads {
  const load = batchLoader<string, ApiTokenRow | null>(async (ids) => {
    const rows = new Map((await read(ids)).map((r) => [String(r.id).toLowerCase(), rowOf(r)]));
    return new Map(ids.map((id) => [id, rows.get(id.toLowerCase()) ?? null]));
  });
  return async (id) => (await load(id)) ?? null;
}

/** The store's token reader (one per store, so every router on it batches together). */
export const tokenReads = perStore(build);

function build(store: Store): TokenReads {
  const { sqlite, pg, mysql } = driverOf(store);
  if (sqlite) {
    // A file database gets a read-only connection of its own (WAL): it never sees a transaction
    // still open on the writer, nor waits for the writer's queue. (In memory there is only one.)
    let reader = sqlite;
    const path = String(store.dataSource.options.database);
    if (path !== ':memory:' && path !== '') {
      const Database = require('better-sqlite3') as SqliteCtor;
      const own = (reader = new Database(path, { readonly: true, fileMustExist: true }));
      own.pragma('busy_timeout = 1000');
      store.beforeClose(async () => {
        if (own.open) own.close();
      });
    }
    const find = reader.prepare(`SELECT ${COLUMNS} FROM api_tokens WHERE id = ?`);
    return async (id) => {
      const r = find.get(id);
      return r ? rowOf(r) : null;
    };
  }
  if (pg) {
    const text = `SELECT ${COLUMNS} FROM api_tokens WHERE id = ANY($1::varchar[])`;
    return batched((ids) => pgQuery(pg, { name: 'cs_token_reads_any', text, values: [ids] }));
  }
  const pool = mysql!;
  // Prepared per arity: batches are padded (repeating an id) to a power of two.
  const findIn = (n: number) => `SELECT ${COLUMNS} FROM api_tokens WHERE id IN (${Array(n).fill('?').join(', ')})`;
  return batched(async (ids) => {
    const n = 2 ** Math.ceil(Math.log2(ids.length));
    return (await mysqlExecute(pool, findIn(n), [...ids, ...Array<string>(n - ids.length).fill(ids[0]!)])) as Raw[];
  });
}
