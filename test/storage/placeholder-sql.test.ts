import type { DataSource, EntityManager } from 'typeorm';
import type { AuditEventRow, UserKeysRow, UserRow } from '../../entities';
import { appendChained } from '../../server/audit/chain';
import { chainSql, rowsAfter, sealsAfter } from '../../server/audit/chain-sql';
import { insertRows } from '../../server/repositories/bulk-rows';
import { hotQueries } from '../../server/repositories/hot-queries';
import { UsersRepository } from '../../server/repositories/users';
import { OutboxRepository } from '../../scim/repositories/outbox';
import { ScimQueries } from '../../scim/repositories/scim-queries';
import { listUserPage, type UserListQuery } from '../../scim/repositories/user-list';

/**
 * The plain-SQL paths' statements, per driver, pinned by snapshot: `$n` placeholders on PostgreSQL,
 * `?` on the others. Refactoring how placeholders are made must leave every text byte-identical
 * (drivers cache statements by text; pg statement names are derived from it). Recording stand-ins
 * take the manager's and drivers' place: the suites on the real databases run these statements.
 */
const TYPES = ['better-sqlite3', 'postgres', 'mysql', 'mariadb'] as const;
type Raw = Record<string, unknown>;

/** One row that every reader here accepts (a chain head, a count, a user, a seal). */
const ROW: Raw = { seq: '7', hash: 'h', n: 500, total_n: 500, id: 'u1', kind: 'seal', sealed_at: 't', envelope: 'e', at: 't', actor: 'a', action: 'x', outcome: 'success' };

/** Values that vary by run (ids, clocks) become stable marks. */
const stable = (v: unknown) =>
  typeof v === 'string' && /^msg_[0-9a-f-]{36}$/.test(v) ? 'msg_<uuid>' : typeof v === 'string' && /^\d{4}-\d\d-\d\dT[\d:.]+Z$/.test(v) ? '<now>' : v;

function recording(type: string) {
  const log: { name?: string; sql: string; values: unknown[] }[] = [];
  const rec = (sql: string, values: unknown[] = [], name?: string) => {
    log.push({ ...(name ? { name } : {}), sql, values: values.map(stable) });
  };
  const pgClient = {
    query: async (q: string | { name?: string; text: string; values: unknown[] }) => {
      if (typeof q === 'string') {
        rec(q);
        return q.startsWith('BEGIN') ? [{ rows: [] }, { rows: [ROW] }] : { rows: [] };
      }
      rec(q.text, q.values, q.name);
      return { rows: [] };
    },
    on: () => undefined,
    off: () => undefined,
  };
  const pgPool = {
    query: async (q: { name?: string; text: string; values: unknown[] }) => (rec(q.text, q.values, q.name), { rows: [ROW] }),
    connect: (cb: (err: null, c: typeof pgClient, release: () => void) => void) => cb(null, pgClient, () => undefined),
  };
  const mysqlConn = {
    query: (sql: string, values: unknown[], cb: (err: null, r: unknown) => void) => (rec(sql, values), cb(null, [ROW])),
    release: () => undefined,
    destroy: () => undefined,
  };
  const mysqlPool = {
    execute: (sql: string, values: unknown[], cb: (err: null, r: unknown) => void) => (rec(sql, values), cb(null, [ROW])),
    getConnection: (cb: (err: null, c: typeof mysqlConn) => void) => cb(null, mysqlConn),
  };
  const sqliteDb = {
    prepare: (sql: string) => ({ get: (...v: unknown[]) => (rec(sql, v), ROW), run: (...v: unknown[]) => rec(sql, v) }),
    transaction: (fn: (...a: unknown[]) => void) => Object.assign((...a: unknown[]) => fn(...a), { immediate: (...a: unknown[]) => fn(...a) }),
    pragma: () => undefined,
    close: () => undefined,
    open: true,
    inTransaction: false,
  };
  const driver = { databaseConnection: sqliteDb, master: pgPool, pool: mysqlPool };
  const options = { type, database: ':memory:' };
  const manager = {
    connection: { options, driver },
    queryRunner: undefined,
    query: async (sql: string, values?: unknown[]) => (rec(sql, values), [ROW]),
  } as unknown as EntityManager;
  const dataSource = { options, driver } as unknown as DataSource;
  return { log, manager, dataSource };
}

const dialectOf = (type: string) => (type === 'postgres' ? 'postgres' : type === 'better-sqlite3' ? 'sqlite' : 'mysql');

const auditRow = (i: number): AuditEventRow => ({
  at: `2026-12-01T10:00:0${i}.000Z`, requestId: `req-${i}`, actor: 'user:u1', action: 'password-key.unwrap', targetType: 'user',
  targetId: 'u1', kekUri: i % 2 ? null : 'local://default', outcome: 'success', detail: null,
});

describe.each(TYPES)('placeholder statement texts (%s)', (type) => {
  test('bulk rows: plain and upsert INSERTs of several rows', async () => {
    const { log, manager } = recording(type);
    await insertRows(manager, { table: 'group_keys', columns: ['a', 'b', 'c'] }, [[1, 'x', 2], [3, 'y', 4], [5, 'z', 6]]);
    await insertRows(manager, { table: 'group_members', columns: ['g', 'u', 'jwe'], upsert: { key: ['g', 'u'], set: ['jwe'] } }, [['g1', 'u1', 'j1'], ['g1', 'u2', 'j2']]);
    expect(log).toMatchSnapshot();
  });

  test('outbox enqueue', async () => {
    const { log, manager } = recording(type);
    await new OutboxRepository(manager).enqueue({ resourceType: 'User', resourceId: 'u1', eventType: 'user.created', data: { id: 'u1' } }, '2026-12-01T10:00:00.000Z');
    await new OutboxRepository(manager).enqueue({ resourceType: 'Group', resourceId: 'g1', eventType: 'group.updated', data: {}, feedOnly: true }, '2026-12-01T10:00:00.000Z');
    expect(log).toMatchSnapshot();
  });

  test('audit chain: appendChained (one and three rows) and the chain readers', async () => {
    const { log, manager } = recording(type);
    await appendChained(manager, [auditRow(1)]);
    await appendChained(manager, [auditRow(2), auditRow(3), auditRow(4)]);
    for await (const r of rowsAfter(chainSql(manager), 5n)) void r;
    for await (const s of sealsAfter(chainSql(manager), 'seal', 5n)) void s;
    expect(log).toMatchSnapshot();
  });

  test('hot queries: user read and audit batches of one and two rows', async () => {
    const { log, dataSource } = recording(type);
    const hot = hotQueries(dataSource, { inTransaction: false, transaction: async <T>(fn: () => Promise<T>) => fn() } as never);
    await hot.userWithKeys('u1');
    await hot.insertAudit([auditRow(1)]);
    await hot.insertAudit([auditRow(2), auditRow(3)]);
    expect(log).toMatchSnapshot();
  });

  test('SCIM user list: first filtered page, deep page, count only', async () => {
    const { log, manager } = recording(type);
    const where = { sql: `u.user_name_norm = :p0 AND json_extract(u.scim_attributes, '$.a:b') LIKE :p1`, params: { p0: 'alice', p1: '%x%' } };
    const pages: UserListQuery[] = [
      { where, orderBy: 'u.user_name_norm', descending: true, startIndex: 1, count: 10 },
      { startIndex: 1, count: 10 },
      { where: { sql: 'u.active = :p0', params: { p0: true } }, startIndex: 101, count: 50 },
      { where: { sql: 'u.active = :p0', params: { p0: true } }, startIndex: 401, count: 50, orderBy: 'u.user_name_norm' },
      { startIndex: 1, count: 0 },
    ];
    for (const q of pages) await listUserPage(manager, dialectOf(type), q);
    expect(log).toMatchSnapshot();
  });

  test('user insert and groups of users', async () => {
    const { log, manager } = recording(type);
    const user: UserRow = {
      id: 'u1', userName: 'Alice', userNameNorm: 'alice', externalId: null, displayName: null, email: null, givenName: null, familyName: null,
      active: true, scimAttributes: '{}', createdAt: 't1', updatedAt: 't1', deletedAt: null, version: 1,
    };
    const keys: UserKeysRow = { userId: 'u1', keyAlg: 'ec-p256', publicJwk: '{}', privateJwe: 'jwe', wrappedPasswordKey: 'w', kekUri: 'local://default', createdAt: 't1' };
    await new UsersRepository(manager).insert(user, keys);
    await new ScimQueries(manager).groupsOf(['u1', 'u2', 'u3']);
    expect(log).toMatchSnapshot();
  });
});
