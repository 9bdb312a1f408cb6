import type { ApiTokenRow } from '../../entities/scim';
import { batchLoader } from '../../server/repositories/batch-loader';
import { committedRead, driverOf, mysqlExecute, paddedInList, perStore, pgQuery, type Raw, type SqliteCtor } from '../../server/repositories/raw-driver';
import type { Store } from '../../server/repositories/store';

/**
 * The token lookup every SCIM and /backend/v1 request makes, straight on the driver (issue 10: the
 * TypeORM findOneBy was a fixed cost of every request). Nothing is cached: on PostgreSQL/MariaDB
 * concurrent lookups share one statement, but a lookup only ever joins a batch not yet sent, so a
 * lookup that starts after a revocation has committed reads the revocation.
 * SQLite reads synchronously, on a read-only connection that sees only committed rows (in memory,
 * on the one connection but never inside another request's transaction).
 */
export type TokenReads = (id: string) => Promise<ApiTokenRow | null>;

const COLUMNS = 'id, name, scope, secret_hash, created_at, last_used_at, expires_at, revoked_at, allowed_addresses';

/** Ids per statement (unknown ids in a flood of bad tokens must not grow one statement without bound). */
const MAX_BATCH = 256;

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

/**
 * Batched by id, at most one batch in flight (batch-loader.ts, serial): lookups that arrive while
 * one is out go together in the next, a batch not yet sent, so each still reads what had committed
 * before it started. MariaDB compares ids without case: rows are matched to callers in lower case.
 */
export function serialBatches(read: (ids: string[]) => Promise<Raw[]>): TokenReads {
  const load = batchLoader<string, ApiTokenRow>(
    async (ids) => {
      const rows = new Map((await read(ids)).map((r) => [String(r.id).toLowerCase(), rowOf(r)]));
      const found = new Map<string, ApiTokenRow>();
      for (const id of ids) {
        const row = rows.get(id.toLowerCase());
        if (row) found.set(id, row);
      }
      return found;
    },
    MAX_BATCH,
    { serial: true },
  );
  return async (id) => (await load(id)) ?? null;
}

/**
 * The store's token reader: one per store, so every router on it batches together; its statement
 * (and SQLite's read-only connection) is prepared on first use.
 */
export function tokenReads(store: Store): TokenReads {
  return (id) => readsOf(store)(id);
}
const readsOf = perStore(build);

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
    const read = (id: string) => {
      const r = find.get(id);
      return r ? rowOf(r) : null;
    };
    if (reader !== sqlite) return async (id) => read(id);
    // In memory the reader is the writer (a token another request inserts, then rolls back).
    return (id) => committedRead(store, sqlite, () => read(id));
  }
  if (pg) {
    const text = `SELECT ${COLUMNS} FROM api_tokens WHERE id = ANY($1::varchar[])`;
    return serialBatches((ids) => pgQuery(pg, { name: 'cs_token_reads_any', text, values: [ids] }));
  }
  const pool = mysql!;
  return serialBatches(async (ids) => {
    const { placeholders, values } = paddedInList(ids);
    return (await mysqlExecute(pool, `SELECT ${COLUMNS} FROM api_tokens WHERE id IN (${placeholders})`, values)) as Raw[];
  });
}
