/**
 * Filtering, sorting and pagination run in the database: the same filters on PostgreSQL, MariaDB
 * and SQLite give the same rows, with correct totals and stable pages.
 */
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { loadConfig } from '../../server/config';
import { boot } from '../../server/boot';
import { DATABASE_FACTORIES, testDatabaseNames, type TestDatabase } from '../support/databases';
import { ScimService } from '../../scim/service';

describe.each(testDatabaseNames())('SCIM filters in the database on %s', (kind) => {
  let db: TestDatabase;
  let deps: Awaited<ReturnType<typeof boot>>;
  let service: ScimService;
  const ctx = { actor: 'test' };
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
    const config = loadConfig({ CS_DATABASE_URL: db.url, CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64'), CS_LOG_LEVEL: 'silent' });
    deps = await boot(config, pino({ level: 'silent' }), { migrate: true });
    service = new ScimService(deps.store, deps.keys, { outbox: false, userDeleteRetentionDays: null, basepath: '/scim/v2' });
    const people: [string, string, string | undefined, boolean, string][] = [
      ['Alice@Example.com', 'Alice', 'A-1', true, 'alice.work@example.com'],
      ['bob@example.com', 'Bob', 'a-1', true, 'bob@corp.example'],
      ['carol@example.org', 'Carol', undefined, false, 'carol@example.org'],
      ['dave_%@example.com', 'Dave', 'D-1', true, 'dave@example.com'],
      ['erin@example.com', 'Erin', 'E-1', false, 'erin@example.com'],
    ];
    for (const [userName, givenName, externalId, active, email] of people) {
      const u = await service.createUser(
        { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName, externalId, active, name: { givenName, familyName: 'Test' }, emails: [{ value: email, type: 'work' }] },
        ctx,
      );
      ids[givenName] = u.id as string;
      await new Promise((r) => setTimeout(r, 3)); // distinct created_at
    }
  });
  afterAll(async () => {
    await deps?.close();
    await db?.drop();
  });

  const names = async (filter: string, extra: Partial<Parameters<ScimService['listUsers']>[0]> = {}) => {
    const r = await service.listUsers({ filter, startIndex: 1, count: 100, sortBy: 'name.givenName', ...extra });
    return (r.resources as { name: { givenName: string } }[]).map((u) => u.name.givenName);
  };

  it.each([
    ['userName eq "alice@example.com"', ['Alice']],
    ['userName eq "ALICE@EXAMPLE.COM"', ['Alice']],
    ['userName co "EXAMPLE.COM"', ['Alice', 'Bob', 'Dave', 'Erin']],
    ['userName sw "dave_%"', ['Dave']],
    ['userName sw "d%"', []],
    ['userName ew ".org"', ['Carol']],
    ['externalId eq "A-1"', ['Alice']],
    ['externalId eq "a-1"', ['Bob']],
    ['externalId pr', ['Alice', 'Bob', 'Dave', 'Erin']],
    ['not (externalId pr)', ['Carol']],
    ['externalId ne "A-1"', ['Bob', 'Carol', 'Dave', 'Erin']],
    ['active eq false', ['Carol', 'Erin']],
    ['active eq true and userName ew ".com"', ['Alice', 'Bob', 'Dave']],
    ['name.givenName eq "carol" or name.givenName eq "BOB"', ['Bob', 'Carol']],
    ['emails[type eq "work"].value eq "BOB@corp.example"', ['Bob']],
    ['emails co "corp"', ['Bob']],
    ['userName eq "nobody@example.com"', []],
    ['not (name.givenName eq "Alice" or name.givenName eq "Bob")', ['Carol', 'Dave', 'Erin']],
    ['(name.givenName eq "Alice" or name.givenName eq "Carol") and not (active eq false)', ['Alice']],
    ['not (active eq true and externalId pr)', ['Carol', 'Erin']],
    ['userName ew ".com" and (externalId eq "E-1" or not (active eq false))', ['Alice', 'Bob', 'Dave', 'Erin']],
  ])('%s', async (filter, expected) => {
    expect(await names(filter)).toEqual(expected);
  });

  it('dates compare chronologically (meta.created gt/ge/lt/le)', async () => {
    const carol = await service.getUser(ids.Carol);
    const created = (carol.meta as { created: string }).created;
    expect(await names(`meta.created gt "${created}"`)).toEqual(['Dave', 'Erin']);
    expect(await names(`meta.created ge "${created}"`)).toEqual(['Carol', 'Dave', 'Erin']);
    expect(await names(`meta.created lt "${created}"`)).toEqual(['Alice', 'Bob']);
    expect(await names(`meta.lastModified le "${created}" and meta.created le "${created}"`)).toEqual(['Alice', 'Bob', 'Carol']);
  });

  it('sorts both ways with a stable order, and paginates with correct totals', async () => {
    expect(await names('userName pr', { sortBy: 'userName', sortOrder: 'descending' })).toEqual(['Erin', 'Dave', 'Carol', 'Bob', 'Alice']);
    const page2 = await service.listUsers({ startIndex: 2, count: 2, sortBy: 'userName' });
    expect(page2.total).toBe(5);
    expect(page2.startIndex).toBe(2);
    expect((page2.resources as { userName: string }[]).map((u) => u.userName)).toEqual(['bob@example.com', 'carol@example.org']);
    const seen: string[] = [];
    for (let start = 1; start <= 5; start += 2) {
      const p = await service.listUsers({ startIndex: start, count: 2 });
      seen.push(...(p.resources as { id: string }[]).map((u) => u.id));
    }
    expect(new Set(seen).size).toBe(5);
    const beyond = await service.listUsers({ startIndex: 10, count: 2 });
    expect(beyond).toMatchObject({ total: 5, resources: [] });
    const countOnly = await service.listUsers({ startIndex: 1, count: 0, filter: 'active eq true' });
    expect(countOnly).toMatchObject({ total: 3, resources: [] });
  });

  it('rejects filters it cannot run in the database', async () => {
    await expect(service.listUsers({ filter: 'title eq "x"', startIndex: 1, count: 10 })).rejects.toMatchObject({ status: 400, scimType: 'invalidFilter' });
    await expect(service.listUsers({ sortBy: 'title', startIndex: 1, count: 10 })).rejects.toMatchObject({ status: 400, scimType: 'invalidFilter' });
  });
});
