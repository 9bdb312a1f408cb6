import type { DataSource } from 'typeorm';
import type { AuditEventRow, UserKeysRow, UserRow } from '../../entities';
import { connectionLost, mappingUniqueness } from './db-errors';
import { AUDIT_WIDTH, auditChainEnabled, auditInsertSql, auditValues, chainOnto, headMoveSql, headOf, HEAD_FOR_UPDATE, HEAD_SELECT } from '../audit/chain';
import { batchLoader } from './batch-loader';
import { placeholderFor } from './placeholders';
import { committedRead, mappedDbError, mysqlExecute, paddedInList, type MysqlConnection, type MysqlPool, type PgClient, type PgPool, type Raw, type SqliteCtor, type SqliteDb } from './raw-driver';
import type { Store } from './store';
import { startCheckpointer, type Checkpointer, type CheckpointLog } from './sqlite-checkpoint';
import { keysInsertSql, keysInsertValues, userInsertSql, userInsertValues, USER_INSERT_WIDTH } from './users';

/**
 * The statements the key API runs on every call, as parameterised SQL straight on the driver
 * (issue 10: TypeORM's per-call query building and result mapping was a third of the server's CPU
 * under load). TypeORM stays for everything else. Placeholders: `?` on SQLite and MySQL/MariaDB,
 * `$n` on PostgreSQL. Errors are mapped like the TypeORM path's: connection lost → 503.
 */

/** What the key API needs to know about the caller: one row, users joined to user_keys. */
export interface UserKeysLookup {
  active: boolean;
  deletedAt: string | null;
  keys: UserKeysRow | null;
}

const USER_KEYS_SELECT = `SELECT u.id, u.active, u.deleted_at, k.key_alg, k.public_jwk, k.private_jwe, k.wrapped_password_key, k.kek_uri, k.created_at AS keys_created_at
   FROM users u LEFT JOIN user_keys k ON k.user_id = u.id`;
/** SQLite's user read (PostgreSQL and MariaDB read a turn's users in one statement: batchedUserReads). */
const USER_KEYS_SQL = `${USER_KEYS_SELECT} WHERE u.id = ?`;

const ignore = () => undefined;

export interface HotQueries {
  userWithKeys(userId: string): Promise<UserKeysLookup | null>;
  /**
   * Chains and inserts audit rows all-or-nothing (one transaction, one chain-head lock for the
   * batch: server/audit/chain.ts). On SQLite it runs synchronously and must be called in the
   * store's write turn, so it never lands inside another open transaction.
   */
  insertAudit(rows: AuditEventRow[]): Promise<void>;
  /**
   * A new user's row, key row and audit row, all or nothing, in one transaction on the driver
   * (issue 10: the SCIM create without TypeORM's transaction and query running; on PostgreSQL a
   * round trip fewer). A duplicate userName/externalId is a ConflictError. SQLite: as insertAudit,
   * in the store's write turn.
   */
  createUser(user: UserRow, keys: UserKeysRow, audit: AuditEventRow): Promise<void>;
  close(): Promise<void>;
}

export const truthy = (v: unknown) => v === true || v === 1 || v === '1' || v === 't';

/** A user_keys row from a users ⟕ user_keys row (its created_at as keys_created_at); null when the user has none. */
export function userKeysRowOf(userId: string, r: Raw): UserKeysRow | null {
  if (r.key_alg == null) return null;
  return {
    userId,
    keyAlg: String(r.key_alg),
    publicJwk: String(r.public_jwk),
    privateJwe: String(r.private_jwe),
    wrappedPasswordKey: String(r.wrapped_password_key),
    kekUri: String(r.kek_uri),
    createdAt: String(r.keys_created_at),
  };
}

function lookupOf(userId: string, r: Raw | undefined): UserKeysLookup | null {
  if (!r) return null;
  return { active: truthy(r.active), deletedAt: (r.deleted_at as string | null) ?? null, keys: userKeysRowOf(userId, r) };
}

/**
 * The user reads of one event-loop turn as one statement (batch-loader.ts): under load the key
 * API's requests share a round trip instead of taking one each. `norm` is how the database
 * compares ids (MariaDB's collation ignores case), so every row finds its callers.
 */
function batchedUserReads(read: (ids: string[]) => Promise<Raw[]>, norm: (id: string) => string = (id) => id) {
  const load = batchLoader<string, UserKeysLookup | null>(async (ids) => {
    const rows = new Map((await read(ids)).map((r) => [norm(String(r.id)), r]));
    return new Map(ids.map((id) => [id, lookupOf(id, rows.get(norm(id)))]));
  });
  return async (userId: string) => (await load(userId)) ?? null;
}

/** Builds the hot-path statements for the data source's driver (initialised). */
export function hotQueries(ds: DataSource, store: Pick<Store, 'inTransaction' | 'transaction'>, log?: CheckpointLog): HotQueries {
  const type = ds.options.type;
  const driver = ds.driver as unknown as { databaseConnection?: SqliteDb; master?: PgPool; pool?: MysqlPool };
  if (type === 'better-sqlite3') return sqliteQueries(ds, driver.databaseConnection!, store, log);
  const chained = auditChainEnabled(ds);
  if (type === 'postgres') return postgresQueries(driver.master!, chained);
  return mysqlQueries(driver.pool!, chained);
}

function sqliteQueries(ds: DataSource, writer: SqliteDb, store: Pick<Store, 'inTransaction' | 'transaction'>, log?: CheckpointLog): HotQueries {
  // The writer's statements first: one that cannot be prepared (a table missing) throws before a
  // reader connection or the checkpoint thread is opened, so a failed build leaves nothing behind.
  const findOnWriter = writer.prepare(USER_KEYS_SQL);
  const insert = writer.prepare(auditInsertSql(1));
  const readHead = writer.prepare(HEAD_SELECT);
  const moveHead = writer.prepare(headMoveSql());
  const chained = auditChainEnabled(ds);
  // Every writer's last step (server/audit/chain.ts): chain the rows onto the head, insert, move it.
  const append = (rows: AuditEventRow[]) => {
    const head = chainOnto(headOf(readHead.get()), rows, chained);
    for (const r of rows) insert.run(...auditValues(r));
    moveHead.run(head.seq, head.hash, new Date().toISOString());
  };
  const insertAll = writer.transaction(append) as ((rows: AuditEventRow[]) => void) & { immediate: (rows: AuditEventRow[]) => void };
  const insertUser = writer.prepare(userInsertSql('better-sqlite3'));
  const insertKeys = writer.prepare(keysInsertSql('better-sqlite3'));
  const create = writer.transaction((user: UserRow, keys: UserKeysRow, audit: AuditEventRow) => {
    insertUser.run(...userInsertValues('better-sqlite3', user));
    insertKeys.run(...keysInsertValues(keys));
    append([audit]);
  }) as unknown as { immediate: (user: UserRow, keys: UserKeysRow, audit: AuditEventRow) => void };
  const path = String(ds.options.database);
  // A second, read-only connection (WAL) for reads while a transaction is open on the writer: they
  // see only committed rows — never that half-done transaction — and do not wait for its queue.
  let reader = writer;
  let checkpointer: Checkpointer | undefined;
  if (path !== ':memory:' && path !== '') {
    const Database = require('better-sqlite3') as SqliteCtor;
    reader = new Database(path, { readonly: true, fileMustExist: true });
    reader.pragma('busy_timeout = 1000');
    // The WAL's fsyncs off the event loop (sqlite-checkpoint.ts).
    checkpointer = startCheckpointer(path, writer, { log });
  }
  const findOnReader = reader === writer ? findOnWriter : reader.prepare(USER_KEYS_SQL);
  // With no transaction open, the writer sees exactly the committed rows too, and its page cache is
  // warm: every audit commit changes the database, which empties the reader's cache on its next
  // read (issue 10: ~47 µs per primary-key lookup on the reader). The check and the read are one
  // synchronous step, so no BEGIN can come in between.
  // In memory there is no second connection: a read waits for another request's transaction to end.
  const find = async (userId: string) =>
    reader === writer ? committedRead(store, writer, () => findOnWriter.get(userId)) : (writer.inTransaction ? findOnReader : findOnWriter).get(userId);
  return {
    userWithKeys: async (userId) => lookupOf(userId, await find(userId)),
    // IMMEDIATE: the write lock before the head is read, so another process cannot move it meanwhile.
    insertAudit: async (rows) => insertAll.immediate(rows),
    createUser: (user, keys, audit) => mappingUniqueness('user', async () => create.immediate(user, keys, audit)),
    close: async () => {
      if (reader !== writer && reader.open) reader.close();
      await checkpointer?.close();
    },
  };
}

/** Batches up to this size insert through a named statement each (at most this many per connection). */
const NAMED_AUDIT_BATCHES = 32;

const numbered = placeholderFor('postgres');

function postgresQueries(pool: PgPool, chained: boolean): HotQueries {
  const findSql = `${USER_KEYS_SELECT} WHERE u.id = ANY($1::varchar[])`;
  // One statement per batch size: the insert of n rows and the head move. Small batches (the common
  // ones) are named, so each connection parses and plans them once instead of on every commit.
  const insertSql = new Map<number, { name?: string; text: string }>();
  const insertAndMove = (rows: number) => {
    let q = insertSql.get(rows);
    if (!q) {
      const text = `WITH ins AS (${auditInsertSql(rows, numbered)} RETURNING 1) ${headMoveSql(numbered, rows * AUDIT_WIDTH)}`;
      q = rows <= NAMED_AUDIT_BATCHES ? { name: `cs_hot_audit_${rows}`, text } : { text };
      if (rows <= NAMED_AUDIT_BATCHES) insertSql.set(rows, q);
    }
    return q;
  };
  // With the head row locked: chain the rows onto it; insert them and move the head in one statement.
  const append = (client: PgClient, locked: Raw | undefined, rows: AuditEventRow[]) => {
    const head = chainOnto(headOf(locked), rows, chained);
    return client.query({ ...insertAndMove(rows.length), values: [...rows.flatMap(auditValues), head.seq, head.hash, new Date().toISOString()] });
  };
  return {
    userWithKeys: batchedUserReads(async (ids) => {
      try {
        // Named: parsed and planned once per connection, whatever the batch size.
        return (await pool.query({ name: 'cs_hot_user_keys_any', text: findSql, values: [ids] })).rows;
      } catch (err) {
        throw mappedDbError(err);
      }
    }),
    insertAudit: async (rows) => {
      if (rows.length === 0) return;
      // Three round trips: BEGIN + head lock (one simple query), insert + head move (one statement), COMMIT.
      await pgTransaction(pool, async (client) => {
        const [, locked] = (await client.query(`BEGIN; ${HEAD_FOR_UPDATE}`)) as { rows: Raw[] }[];
        await append(client, locked.rows[0], rows);
      });
    },
    createUser: (user, keys, audit) =>
      mappingUniqueness('user', () =>
        // Four round trips: BEGIN; both rows and then the head lock (one statement: the lock last,
        // as every writer takes it, and the key row's foreign key checked at the statement's end);
        // audit insert + head move; COMMIT.
        pgTransaction(pool, async (client) => {
          await client.query('BEGIN');
          const { rows: locked } = (await client.query({ name: 'cs_hot_user_create', text: PG_CREATE_USER, values: [...userInsertValues('postgres', user), ...keysInsertValues(keys)] })) as { rows: Raw[] };
          await append(client, locked[0], [audit]);
        }),
      ),
    close: async () => undefined,
  };
}

const PG_CREATE_USER = `WITH u AS (${userInsertSql('postgres')} RETURNING 1),
  k AS (${keysInsertSql('postgres', USER_INSERT_WIDTH)} RETURNING 1)
  ${HEAD_FOR_UPDATE}`;

/**
 * Runs `work` on a pooled client, which begins the transaction itself; commits after it. On an
 * error: ROLLBACK, or (connection lost) the client is dropped from the pool, not reused.
 */
async function pgTransaction(pool: PgPool, work: (client: PgClient) => Promise<void>): Promise<void> {
  const { client, release } = await new Promise<{ client: PgClient; release: (err?: unknown) => void }>((resolve, reject) =>
    pool.connect((err, c, r) => (err ? reject(mappedDbError(err)) : resolve({ client: c, release: r }))),
  );
  // A connection that dies while checked out also emits 'error': the failed query reports it.
  client.on('error', ignore);
  try {
    await work(client);
    await client.query('COMMIT');
    client.off('error', ignore);
    release();
  } catch (err) {
    const lost = connectionLost(err);
    if (!lost) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.off('error', ignore);
    }
    release(lost ? err : undefined);
    throw mappedDbError(err);
  }
}

function mysqlQueries(pool: MysqlPool, chained: boolean): HotQueries {
  const run = (sql: string, values: unknown[]) => mysqlExecute(pool, sql, values);
  // Every writer's last step (server/audit/chain.ts): lock the head, chain the rows onto it, insert, move it.
  const append = async (q: MysqlQuery, rows: AuditEventRow[]) => {
    const head = chainOnto(headOf(((await q(HEAD_FOR_UPDATE)) as Raw[])[0]), rows, chained);
    await q(auditInsertSql(rows.length), rows.flatMap(auditValues));
    await q(headMoveSql(), [head.seq, head.hash, new Date().toISOString()]);
  };
  return {
    userWithKeys: batchedUserReads(async (ids) => {
      const { placeholders, values } = paddedInList(ids);
      return (await run(`${USER_KEYS_SELECT} WHERE u.id IN (${placeholders})`, values)) as Raw[];
    }, (id) => id.toLowerCase()),
    insertAudit: async (rows) => {
      if (rows.length === 0) return;
      await mysqlTransaction(pool, (q) => append(q, rows));
    },
    createUser: (user, keys, audit) =>
      mappingUniqueness('user', () =>
        mysqlTransaction(pool, async (q) => {
          await q(userInsertSql('mysql'), userInsertValues('mysql', user));
          await q(keysInsertSql('mysql'), keysInsertValues(keys));
          await append(q, [audit]);
        }),
      ),
    close: async () => undefined,
  };
}

/** A statement on one checked-out MariaDB connection (mysqlTransaction's). */
type MysqlQuery = (sql: string, values?: unknown[]) => Promise<unknown>;

/** As pgTransaction, on a MariaDB pooled connection: START TRANSACTION, `work`, COMMIT. */
async function mysqlTransaction(pool: MysqlPool, work: (q: MysqlQuery) => Promise<void>): Promise<void> {
  const conn = await new Promise<MysqlConnection>((resolve, reject) => pool.getConnection((err, c) => (err ? reject(mappedDbError(err)) : resolve(c))));
  const q = (sql: string, values: unknown[] = []) => new Promise<unknown>((resolve, reject) => conn.query(sql, values, (err, r) => (err ? reject(err) : resolve(r))));
  try {
    await q('START TRANSACTION');
    await work(q);
    await q('COMMIT');
    conn.release();
  } catch (err) {
    // A connection that broke is dropped from the pool, not reused.
    if (connectionLost(err)) conn.destroy();
    else {
      await q('ROLLBACK').catch(() => undefined);
      conn.release();
    }
    throw mappedDbError(err);
  }
}
