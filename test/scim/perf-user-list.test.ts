/**
 * The plain-SQL user list (scim/repositories/user-list.ts, issue 10): named filter parameters
 * become positional ones without touching quoted literals; on each database, pages (first, deep,
 * sorted either way, filtered) are the right slices of the whole list with the right total, every
 * resource carries its own keys, and values that look like SQL or parameters stay values. On
 * PostgreSQL a deep page and its total are one statement.
 */
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { loadConfig } from '../../server/config';
import { boot } from '../../server/boot';
import { DATABASE_FACTORIES, testDatabaseNames, type TestDatabase } from '../support/databases';
import { ScimService } from '../../scim/service';
import { positional } from '../../scim/repositories/user-list';
import { USER_KEYS_SCHEMA } from '../../scim/schemas';

const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

describe('positional parameters', () => {
  it('numbers PostgreSQL parameters in order of appearance, skipping quoted literals with colons', () => {
    const values: unknown[] = ['before'];
    const sql = positional(`(a = :f1 AND json_extract(c, '$."urn:x:f0"') = :f0 AND b LIKE :f1 ESCAPE '!')`, { f0: 'zero', f1: 'one' }, 'postgres', values);
    expect(sql).toBe(`(a = $2 AND json_extract(c, '$."urn:x:f0"') = $3 AND b LIKE $4 ESCAPE '!')`);
    expect(values).toEqual(['before', 'one', 'zero', 'one']);
  });

  it('uses ? on SQLite and MariaDB and leaves unknown :names alone', () => {
    const values: unknown[] = [];
    expect(positional('x = :f0 AND y = :other', { f0: 1 }, 'mysql', values)).toBe('x = ? AND y = :other');
    expect(values).toEqual([1]);
  });
});

describe.each(testDatabaseNames())('SCIM user list pages on %s', (kind) => {
  let db: TestDatabase;
  let deps: Awaited<ReturnType<typeof boot>>;
  let service: ScimService;
  const ctx = { actor: 'test' };
  const ids: string[] = [];
  const names: string[] = [];
  // Values shaped like parameters, quotes and SQL: they must match only themselves.
  const tricky = [":f0", "o'brien", "x' OR '1'='1", '$1'];

  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
    const config = loadConfig({ CS_DATABASE_URL: db.url, CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64'), CS_LOG_LEVEL: 'silent' });
    deps = await boot(config, pino({ level: 'silent' }), { migrate: true });
    service = new ScimService(deps.store, deps.keys, { outbox: false, userDeleteRetentionDays: null, basepath: '/scim/v2' });
    for (let i = 0; i < 23; i++) {
      // userName order differs from creation order, so a sort that is ignored shows.
      const userName = `user-${String((i * 7) % 23).padStart(2, '0')}@example.com`;
      const body: Record<string, unknown> = { schemas: [USER, ENTERPRISE], userName, externalId: tricky[i] ?? `ext-${i}`, active: i % 3 !== 0 };
      if (i % 5 === 0) body[ENTERPRISE] = { department: i % 2 === 0 ? 'even:dept' : 'odd' };
      const u = await service.createUser(body, ctx);
      ids.push(u.id as string);
      names.push(userName);
      await new Promise((r) => setTimeout(r, 2)); // distinct created_at: the default order is creation order
    }
    await service.deleteUser(ids[4]!, ctx);
  }, 120_000);
  afterAll(async () => {
    await deps?.close();
    await db?.drop();
  });

  const live = () => ids.filter((_, i) => i !== 4);
  const list = (p: Partial<Parameters<ScimService['listUsers']>[0]>) => service.listUsers({ startIndex: 1, count: 100, ...p });

  it('pages through the live users in creation order, with the total on every page', async () => {
    const seen: string[] = [];
    for (let start = 1; start <= 25; start += 4) {
      const page = await list({ startIndex: start, count: 4 });
      expect(page.total).toBe(22);
      expect(page.startIndex).toBe(start);
      seen.push(...page.resources.map((r) => r.id as string));
    }
    expect(seen).toEqual(live());
    expect((await list({ startIndex: 30, count: 4 })).resources).toEqual([]);
    expect((await list({ startIndex: 30, count: 4 })).total).toBe(22);
    expect((await list({ count: 0 })).total).toBe(22);
  });

  // One round trip and one snapshot: the total cannot disagree with the page it comes with.
  it.each([
    ['read from the end', 18, 1],
    ['read from the start', 5, 1],
    // Past the end no row tells the total: it is counted on its own.
    ['past the end', 30, 2],
  ])('a deep page %s, with its total, takes %d statement(s) on PostgreSQL', async (_name, startIndex, statements) => {
    const query = jest.spyOn(deps.store.dataSource.manager, 'query');
    const pool = kind === 'postgres' ? jest.spyOn(pgPool(), 'query') : undefined;
    try {
      const page = await list({ startIndex, count: 4 });
      expect(page.resources.map((r) => r.id)).toEqual(live().slice(startIndex - 1, startIndex + 3));
      expect(page.total).toBe(22);
      if (kind === 'postgres') expect(query.mock.calls.length + pool!.mock.calls.length).toBe(statements);
    } finally {
      query.mockRestore();
      pool?.mockRestore();
    }
  });

  const pgPool = () => (deps.store.dataSource.driver as unknown as { master: { query: (q: { name?: string; text: string }) => Promise<unknown> } }).master;

  // Planning a filter page cost PostgreSQL more than running it: each text is planned once per connection.
  it('on PostgreSQL a filtered first page and its count run as named statements, the same name for the same shape', async () => {
    if (kind !== 'postgres') return;
    const pool = jest.spyOn(pgPool(), 'query');
    try {
      for (const i of [2, 9]) {
        const page = await list({ filter: `userName eq "${names[i]}"` });
        expect(page.resources.map((r) => r.id)).toEqual([ids[i]]);
        expect(page.total).toBe(1);
      }
      // A full filtered page needs its count as well.
      const active = live().filter((id) => ids.indexOf(id) % 3 !== 0);
      const full = await list({ filter: 'active eq true', count: 3 });
      expect(full.resources.map((r) => r.id)).toEqual(active.slice(0, 3));
      expect(full.total).toBe(active.length);
      const calls = pool.mock.calls.map(([q]) => q);
      expect(calls).toHaveLength(4);
      for (const q of calls) expect(q.name).toMatch(/^cs_q_[0-9a-f]{24}$/);
      expect(calls[0]!.name).toBe(calls[1]!.name);
      expect(calls[1]!.text).toBe(calls[0]!.text);
      expect(new Set(calls.map((q) => q.name)).size).toBe(3);
      expect(calls[3]!.text).toMatch(/^SELECT COUNT\(\*\)/);
    } finally {
      pool.mockRestore();
    }
  });

  // A generic plan cannot see a LIKE pattern or a range's bounds: such pages are planned each time
  // (`sw` on userName / externalId is not one of them: list-indexes.test.ts).
  it.each(['userName co "user-1"', 'userName ew ".com"', 'meta.created gt "2000-01-01T00:00:00Z"'])('on PostgreSQL a page filtered by %s stays unnamed', async (filter) => {
    if (kind !== 'postgres') return;
    const pool = jest.spyOn(pgPool(), 'query');
    try {
      const page = await list({ filter });
      expect(page.resources.length).toBeGreaterThan(0);
      expect(pool).not.toHaveBeenCalled();
    } finally {
      pool.mockRestore();
    }
  });

  // Pages in the first half of the list are read from its start, the others from its end.
  it.each([
    ['ascending', false, 6],
    ['descending', true, 6],
    ['ascending', false, 16],
    ['descending', true, 16],
    ['ascending', false, 20],
  ])('a deep page sorted by userName %s (startIndex %#) is the slice of the sorted list', async (sortOrder, descending, startIndex) => {
    const sorted = live()
      .map((id) => ({ id, name: names[ids.indexOf(id)]! }))
      .sort((a, b) => (a.name < b.name ? -1 : 1) * (descending ? -1 : 1))
      .map((u) => u.id);
    const page = await list({ sortBy: 'userName', sortOrder, startIndex, count: 5 });
    expect(page.resources.map((r) => r.id)).toEqual(sorted.slice(startIndex - 1, startIndex + 4));
    expect(page.total).toBe(22);
  });

  it.each([3, 9, 14, 15])('a filtered deep page (startIndex %d) counts only the matches', async (startIndex) => {
    const active = live().filter((id) => ids.indexOf(id) % 3 !== 0);
    const page = await list({ filter: 'active eq true', startIndex, count: 5 });
    expect(page.resources.map((r) => r.id)).toEqual(active.slice(startIndex - 1, startIndex + 4));
    expect(page.total).toBe(active.length);
  });

  it('each resource carries its own key material and profile', async () => {
    const page = await list({ startIndex: 2, count: 10 });
    for (const r of page.resources) {
      const keys = r[USER_KEYS_SCHEMA] as Record<string, string>;
      const own = await service.getUser(r.id as string);
      expect(keys).toEqual(own[USER_KEYS_SCHEMA]);
      expect(r).toEqual(own);
    }
  });

  it.each(tricky)('externalId eq %j matches that user only', async (value) => {
    const page = await list({ filter: `externalId eq ${JSON.stringify(value)}` });
    expect(page.resources.map((r) => r.id)).toEqual([ids[tricky.indexOf(value)]]);
    expect(page.total).toBe(1);
  });

  it("lists each user's groups, in display-name order", async () => {
    const b = await service.createGroup({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'B team', members: [{ value: ids[1] }, { value: ids[2] }] }, ctx);
    const a = await service.createGroup({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'a team', members: [{ value: ids[2] }] }, ctx);
    const page = await list({ startIndex: 2, count: 3 });
    const groups = (r: Record<string, unknown>) => ((r.groups as { value: string; display: string }[] | undefined) ?? []).map((g) => [g.value, g.display]);
    expect(page.resources.map((r) => r.id)).toEqual([ids[1], ids[2], ids[3]]);
    expect(page.resources.map(groups)).toEqual([[[b.id, 'B team']], [[a.id, 'a team'], [b.id, 'B team']], []]);
  });

  it('a filter on an extension value holding a colon reads the stored JSON', async () => {
    const page = await list({ filter: `${ENTERPRISE}:department eq "even:dept"` });
    expect(page.resources.map((r) => r.id)).toEqual([ids[0], ids[10], ids[20]]);
  });
});
