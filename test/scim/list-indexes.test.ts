/**
 * The SCIM list indexes (issue 10) and the conditions that use them: `sw` on userName/externalId
 * (SQLite adds a range next to its LIKE, PostgreSQL has text_pattern_ops indexes) returns exactly
 * the rows whose value starts with the prefix, and pages deep into the list (ordered by the live
 * users index) return the right slice — on each database, after the migration and after undoing
 * and redoing it. On PostgreSQL the count of live users can read a narrow index alone.
 */
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { loadConfig } from '../../server/config';
import { boot } from '../../server/boot';
import { DATABASE_FACTORIES, testDatabaseNames, type TestDatabase } from '../support/databases';
import { ScimService } from '../../scim/service';
import { filterToSql, parseFilter, prefixRange } from '../../scim/filter-sql';
import { USER_COLUMNS } from '../../scim/repositories/scim-queries';
import { ENTERPRISE_USER_COLUMNS } from '../../scim/enterprise-columns';
import { USER_KEYS_SCHEMA } from '../../scim/schemas';
import { ScimListIndexes1764600000000 } from '../../entities/migrations/1764600000000-scim-list-indexes';
import { UsersLiveCount1764800000000 } from '../../entities/migrations/1764800000000-users-live-count';

const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';

describe('prefixRange', () => {
  it.each([
    ['abc', 'abd'],
    ['a_', 'a`'],
    ['zoë', 'zoì'],
    ['x\u{1F600}', 'x\u{1F601}'],
    ['x\uD7FF', 'x\uE000'],
  ])('%j → %j', (prefix, next) => {
    expect(prefixRange(prefix)).toBe(next);
  });

  it('bounds sw on SQLite columns (userName, externalId), never on values read from stored JSON', () => {
    const params = (filter: string) => Object.values(filterToSql(parseFilter(filter), { ...USER_COLUMNS, ...ENTERPRISE_USER_COLUMNS }, { dialect: 'sqlite' }).params);
    expect(params('userName sw "Ab"')).toEqual(expect.arrayContaining(['ab', 'ac']));
    expect(params('externalId sw "Ab"')).toEqual(expect.arrayContaining(['Ab', 'Ac']));
    expect(params('manager sw "Ab"')).not.toContain('Ac');
    expect(Object.values(filterToSql(parseFilter('userName sw "Ab"'), USER_COLUMNS, { dialect: 'postgres' }).params)).not.toContain('ac');
  });

  it('has no upper bound for an empty prefix or one ending in U+10FFFF', () => {
    expect(prefixRange('')).toBeUndefined();
    expect(prefixRange('a\u{10FFFF}')).toBeUndefined();
  });
});

describe.each(testDatabaseNames())('SCIM list indexes on %s', (kind) => {
  let db: TestDatabase;
  let deps: Awaited<ReturnType<typeof boot>>;
  let service: ScimService;
  const ctx = { actor: 'test' };
  // Names around the prefixes below: neighbours in sort order that must not match, wildcards,
  // upper case (userName is case-insensitive), non-ASCII, and an externalId differing only in case.
  const people: [string, string][] = [
    ['pre-a@example.com', 'Ext-1'],
    ['PRE-b@example.com', 'ext-2'],
    ['pre-c@example.com', 'Ext-3'],
    ['prf@example.com', 'Exu-4'],
    ['prd@example.com', 'Exs-5'],
    ['pre@example.com', 'Ext'],
    ['pr_e@example.com', 'E_t-7'],
    ['pr%e@example.com', 'E%t-8'],
    ['zoë@example.com', 'Zoë-9'],
    ['zoz@example.com', 'Zoz-10'],
    ['zp@example.com', 'Zp-11'],
  ];
  const byName: Record<string, string> = {};
  const created: string[] = [];

  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
    const config = loadConfig({ CS_DATABASE_URL: db.url, CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64'), CS_LOG_LEVEL: 'silent' });
    deps = await boot(config, pino({ level: 'silent' }), { migrate: true });
    service = new ScimService(deps.store, deps.keys, { outbox: false, userDeleteRetentionDays: null, basepath: '/scim/v2' });
    for (const [userName, externalId] of people) {
      const u = await service.createUser({ schemas: [USER], userName, externalId }, ctx);
      byName[userName] = u.id as string;
      created.push(u.id as string);
      await new Promise((r) => setTimeout(r, 2)); // distinct created_at: the list order is creation order
    }
    // Deleted users stay in the table (retention) but not in any list.
    for (const userName of ['prd@example.com', 'zoz@example.com']) await service.deleteUser(byName[userName], ctx);
  }, 60_000);
  afterAll(async () => {
    await deps?.close();
    await db?.drop();
  });

  const userNames = async (filter: string) => {
    const r = await service.listUsers({ filter, startIndex: 1, count: 100, sortBy: 'userName' });
    expect(r.total).toBe(r.resources.length);
    return (r.resources as { userName: string }[]).map((u) => u.userName);
  };
  const live = () => created.filter((id) => id !== byName['prd@example.com'] && id !== byName['zoz@example.com']);

  const prefixCases: [string, string[]][] = [
    ['userName sw "pre"', ['pre-a@example.com', 'PRE-b@example.com', 'pre-c@example.com', 'pre@example.com']],
    ['userName sw "PRE-"', ['pre-a@example.com', 'PRE-b@example.com', 'pre-c@example.com']],
    ['userName sw "pr_"', ['pr_e@example.com']],
    ['userName sw "pr%"', ['pr%e@example.com']],
    ['userName sw "zo"', ['zoë@example.com']],
    ['userName sw "zoë"', ['zoë@example.com']],
    ['userName sw "pre@example.com"', ['pre@example.com']],
    ['userName sw "prz"', []],
    ['externalId sw "Ext"', ['pre-a@example.com', 'pre-c@example.com', 'pre@example.com']],
    ['externalId sw "ext"', ['PRE-b@example.com']],
    ['externalId sw "E_"', ['pr_e@example.com']],
    ['externalId sw "Zo"', ['zoë@example.com']],
    ['userName sw "pre" and externalId sw "Ext-"', ['pre-a@example.com', 'pre-c@example.com']],
    ['userName sw "zo" or externalId sw "ext"', ['PRE-b@example.com', 'zoë@example.com']],
    ['not (userName sw "p")', ['zoë@example.com', 'zp@example.com']],
  ];

  it.each(prefixCases)('%s', async (filter, expected) => {
    expect((await userNames(filter)).sort()).toEqual([...expected].sort());
  });

  it('a page deep into the list is the right slice of the live users, in creation order', async () => {
    const all = live();
    const full = await service.listUsers({ startIndex: 1, count: 100 });
    expect(full.total).toBe(all.length);
    expect(full.resources.map((u) => u.id)).toEqual(all);
    for (const count of [1, 2, 4]) {
      for (let start = 1; start <= all.length + 1; start++) {
        const p = await service.listUsers({ startIndex: start, count });
        expect({ start, total: p.total, ids: p.resources.map((u) => u.id) }).toEqual({ start, total: all.length, ids: all.slice(start - 1, start - 1 + count) });
      }
    }
    const last = await service.listUsers({ startIndex: all.length, count: 100 });
    expect(last.resources.map((u) => u.userName)).toEqual(['zp@example.com']);
  });

  it('totals are right whether the page is full, partial, empty or not asked for', async () => {
    const filter = 'userName sw "pre-"'; // 3 live matches
    const total = async (startIndex: number, count: number) => {
      const r = await service.listUsers({ filter, startIndex, count });
      return [r.total, r.resources.length];
    };
    expect(await total(1, 2)).toEqual([3, 2]);
    expect(await total(1, 3)).toEqual([3, 3]);
    expect(await total(1, 4)).toEqual([3, 3]);
    expect(await total(2, 4)).toEqual([3, 2]);
    expect(await total(3, 1)).toEqual([3, 1]);
    expect(await total(4, 4)).toEqual([3, 0]);
    expect(await total(9, 4)).toEqual([3, 0]);
    expect(await total(1, 0)).toEqual([3, 0]);
    expect(await total(5, 0)).toEqual([3, 0]);
    expect((await service.listUsers({ filter: 'userName sw "nobody"', startIndex: 1, count: 5 })).total).toBe(0);
    expect((await service.listUsers({ filter: 'userName sw "nobody"', startIndex: 3, count: 0 })).total).toBe(0);
  });

  it('every user of a page carries its own keys, as a single read returns them', async () => {
    const page = await service.listUsers({ startIndex: 2, count: 5 });
    expect(page.resources).toHaveLength(5);
    for (const u of page.resources) {
      expect(u[USER_KEYS_SCHEMA]).toMatchObject({ keyAlgorithm: expect.any(String), encryptedPrivateKey: expect.any(String), wrappedPasswordKey: expect.any(String) });
      expect(u).toEqual(await service.getUser(u.id as string));
    }
  });

  it('the migration adds the indexes; answers are the same without them and after adding them again', async () => {
    const qr = deps.store.dataSource.createQueryRunner();
    const indexNames = async () => ((await qr.getTable('users'))?.indices ?? []).map((i) => i.name);
    try {
      expect(await indexNames()).toContain('ix_users_live_order');
      if (kind === 'postgres') expect(await indexNames()).toEqual(expect.arrayContaining(['ix_users_user_name_norm_prefix', 'ix_users_external_id_prefix']));
      // Its own down and up (later migrations of other features are not this test's subject).
      const migration = new ScimListIndexes1764600000000();
      await migration.down(qr);
      expect(await indexNames()).not.toContain('ix_users_live_order');
      expect(await indexNames()).not.toContain('ix_users_user_name_norm_prefix');
      expect(await userNames('userName sw "pre-"')).toHaveLength(3);
      await migration.up(qr);
      expect(await indexNames()).toContain('ix_users_live_order');
    } finally {
      await qr.release();
    }
    for (const [filter, expected] of prefixCases.slice(0, 3)) expect((await userNames(filter)).sort()).toEqual([...expected].sort());
    expect((await service.listUsers({ startIndex: 3, count: 2 })).resources.map((u) => u.id)).toEqual(live().slice(2, 4));
  });

  it('the live-user count of a deep page reads ix_users_live_count alone on PostgreSQL, and counts the same without it', async () => {
    const qr = deps.store.dataSource.createQueryRunner();
    const deep = async () => {
      const page = await service.listUsers({ startIndex: 8, count: 5 });
      return { total: page.total, ids: page.resources.map((u) => u.id) };
    };
    const expected = { total: live().length, ids: live().slice(7, 12) };
    try {
      expect(await deep()).toEqual(expected);
      if (kind !== 'postgres') return;
      // A table this small is read whole anyway, and ix_users_live_order is as small: forbid the one,
      // drop the other for this transaction only, to see that the count can read the narrow index alone.
      await qr.startTransaction();
      await qr.query('SET LOCAL enable_seqscan = off');
      await qr.query('DROP INDEX ix_users_live_order');
      const plan = ((await qr.query('EXPLAIN SELECT COUNT(*) AS n FROM users u WHERE u.deleted_at IS NULL')) as { 'QUERY PLAN': string }[]).map((r) => r['QUERY PLAN']).join('\n');
      await qr.rollbackTransaction();
      expect(plan).toContain('Index Only Scan using ix_users_live_count');
      const migration = new UsersLiveCount1764800000000();
      await migration.down(qr);
      expect(((await qr.getTable('users'))?.indices ?? []).map((i) => i.name)).not.toContain('ix_users_live_count');
      expect(await deep()).toEqual(expected);
      await migration.up(qr);
      expect(await deep()).toEqual(expected);
    } finally {
      await qr.release();
    }
  });
});
