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
import { UsersLivePrefix1764810000000 } from '../../entities/migrations/1764810000000-users-live-prefix';

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
  });

  it('bounds sw on PostgreSQL only over the live-prefix indexes (userName, externalId), in their byte-wise operators, and calls only those unsteered', () => {
    const pg = (filter: string) => filterToSql(parseFilter(filter), { ...USER_COLUMNS, ...ENTERPRISE_USER_COLUMNS }, { dialect: 'postgres' });
    expect(pg('userName sw "Ab"')).toEqual({
      sql: "((u.user_name_norm IS NOT NULL AND u.user_name_norm ~>=~ :f1 AND u.user_name_norm ~<~ :f2 AND u.user_name_norm LIKE :f0 ESCAPE '!'))",
      params: { f0: 'ab%', f1: 'ab', f2: 'ac' },
      steered: false,
    });
    expect(pg('externalId sw "Ab"')).toMatchObject({ params: { f0: 'Ab%', f1: 'Ab', f2: 'Ac' }, steered: false });
    for (const filter of ['displayName sw "Ab"', 'manager sw "Ab"', 'userName sw ""']) {
      expect(pg(filter).sql).not.toContain('~<~');
      expect(pg(filter).steered).toBe(true);
    }
  });

  it('leaves out the bounds for a prefix with a lone surrogate (sent as U+FFFD, outside them)', () => {
    expect(prefixRange('a\uD800')).toBeUndefined();
    expect(prefixRange('a\uDC00b')).toBeUndefined();
    expect(prefixRange('a\u{1F600}')).toBe('a\u{1F601}');
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
    ['Pr\\E\\x@example.com', 'E\\T-12'],
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
    ['userName sw "pr\\\\e\\\\"', ['Pr\\E\\x@example.com']],
    ['externalId sw "E\\\\"', ['Pr\\E\\x@example.com']],
    ['externalId sw "e\\\\"', []],
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

  /** Every prefix of every live user's userName and externalId, varied in case, and each with a wildcard or backslash after it. */
  const prefixProbes = () => {
    const probes = new Set<string>();
    for (const [userName, externalId] of people)
      for (const v of [userName, externalId])
        for (let n = 0; n <= Math.min(v.length, 6); n++) {
          const p = v.slice(0, n);
          for (const q of [p, p.toUpperCase(), `${p}%`, `${p}_`, `${p}\\`]) probes.add(q);
        }
    return [...probes];
  };
  const scimString = (v: string) => JSON.stringify(v); // a SCIM filter value is a JSON string

  it('sw answers exactly the users whose value starts with the prefix (userName ignoring case), for every prefix, with and without the live-prefix indexes', async () => {
    const liveNames = new Set(people.map(([n]) => n).filter((n) => n !== 'prd@example.com' && n !== 'zoz@example.com'));
    const check = async () => {
      for (const p of prefixProbes()) {
        const byName = [...liveNames].filter((n) => n.toLowerCase().startsWith(p.toLowerCase())).sort();
        const byExternal = people.filter(([n, e]) => liveNames.has(n) && e.startsWith(p)).map(([n]) => n).sort();
        const [names, externals] = await Promise.all([userNames(`userName sw ${scimString(p)}`), userNames(`externalId sw ${scimString(p)}`)]);
        expect([p, names.sort(), externals.sort()]).toEqual([p, byName, byExternal]);
      }
    };
    await check();
    if (kind !== 'postgres') return;
    const qr = deps.store.dataSource.createQueryRunner();
    const migration = new UsersLivePrefix1764810000000();
    try {
      await migration.down(qr);
      await check();
    } finally {
      await migration.up(qr);
      await qr.release();
    }
  }, 240_000);

  it('on PostgreSQL sw pages and deep pages are named statements whose generic plans read the live-prefix / live-order index alone, without a sequential scan of users', async () => {
    if (kind !== 'postgres') return;
    const sent: { name?: string; text: string; values: unknown[] }[] = [];
    // Named statements go to the pool itself (raw-driver.ts pgQuery); TypeORM's own queries check out a client.
    const pool = (deps.store.dataSource.driver as unknown as { master: { query: (q: unknown) => Promise<unknown> } }).master;
    const query = pool.query.bind(pool);
    const spy = jest.spyOn(pool, 'query').mockImplementation((q) => {
      if (typeof q === 'object') sent.push(q as (typeof sent)[number]);
      return query(q);
    });
    try {
      // The list's own order (creation), which the live-prefix indexes include.
      const page = async (filter: string) => (await service.listUsers({ filter, startIndex: 1, count: 100 })).resources.map((u) => u.userName);
      expect(await page('userName sw "PRE-"')).toEqual(['pre-a@example.com', 'PRE-b@example.com', 'pre-c@example.com']);
      expect(await page('externalId sw "Ext-"')).toEqual(['pre-a@example.com', 'pre-c@example.com']);
      expect((await service.listUsers({ startIndex: 3, count: 2 })).resources.map((u) => u.id)).toEqual(live().slice(2, 4));
    } finally {
      spy.mockRestore();
    }
    const pages = sent.filter((q) => q.name && q.text.includes('~>=~') && !q.text.includes('COUNT(*)'));
    expect(pages.map((q) => q.values[0])).toEqual(['pre-', 'Ext-']);
    const deep = sent.filter((q) => q.name && q.text.startsWith('WITH t AS'));
    expect(deep).toHaveLength(1);
    const literal = (v: unknown) => (typeof v === 'number' ? String(v) : `'${String(v).replace(/'/g, "''")}'`);
    const qr = deps.store.dataSource.createQueryRunner();
    try {
      await qr.query('ANALYZE users');
      for (const [q, index] of [
        [pages[0]!, 'ix_users_live_user_name_prefix'],
        [pages[1]!, 'ix_users_live_external_id_prefix'],
        [deep[0]!, 'ix_users_live_order'],
      ] as const) {
        await qr.startTransaction();
        try {
          // The plan PostgreSQL may keep for every prefix once the statement has run five times.
          await qr.query('SET LOCAL plan_cache_mode = force_generic_plan');
          await qr.query('SET LOCAL enable_seqscan = off'); // a table this small would be read whole
          await qr.query(`PREPARE sw_page AS ${q.text}`);
          const plan = ((await qr.query(`EXPLAIN EXECUTE sw_page(${q.values.map(literal).join(', ')})`)) as { 'QUERY PLAN': string }[]).map((r) => r['QUERY PLAN']).join('\n');
          expect(plan).toContain(`Index Only Scan using ${index}`);
          if (index !== 'ix_users_live_order') expect(plan).toMatch(/~>=~ \$\d/); // bounds as parameters: the generic plan
          expect(plan).not.toMatch(/Seq Scan on users/);
        } finally {
          // Prepared statements outlive the transaction; only ours goes (the pool's client keeps its own).
          await qr.rollbackTransaction();
          await qr.query('DEALLOCATE sw_page').catch(() => undefined);
        }
      }
    } finally {
      await qr.release();
    }
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
      // A table this small is read whole anyway, and the other partial indexes are as small: forbid
      // the one, drop the others for this transaction only, to see that the count can read the narrow index alone.
      await qr.startTransaction();
      await qr.query('SET LOCAL enable_seqscan = off');
      await qr.query('DROP INDEX ix_users_live_order');
      await qr.query('DROP INDEX ix_users_live_user_name_prefix');
      await qr.query('DROP INDEX ix_users_live_external_id_prefix');
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
