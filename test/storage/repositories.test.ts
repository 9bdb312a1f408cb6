import pino from 'pino';
import { loadConfig } from '../../server/config';
import { boot, openStore } from '../../server/boot';
import type { Store } from '../../server/repositories/store';
import { ConfigError, ConflictError } from '../../server/errors';
import { nowIso } from '../../entities/columns';
import { MIGRATIONS } from '../../entities/migrations/index';
import { UserEntity, type UserRow } from '../../entities';
import { testDatabaseNames, DATABASE_FACTORIES, type TestDatabase } from '../support/databases';

const user = (id: string, userName: string, externalId: string | null = null): UserRow => ({
  id, userName, userNameNorm: userName.toLowerCase(), externalId, displayName: null, email: null, givenName: null,
  familyName: null, active: true, scimAttributes: '{}', createdAt: nowIso(), updatedAt: nowIso(), deletedAt: null, version: 1,
});
const keys = (userId: string) => ({ userId, keyAlg: 'ec-p256', publicJwk: '{}', privateJwe: 'jwe', wrappedPasswordKey: 'cs1.x', kekUri: 'local://default', createdAt: nowIso() });
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

describe.each(testDatabaseNames())('storage on %s', (kind) => {
  let db: TestDatabase;
  let store: Store;

  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
    store = await openStore(loadConfig({ CS_DATABASE_URL: db.url }));
  });
  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });

  test('serve refuses an unmigrated schema with a message that says how to fix it', async () => {
    expect(await store.hasPendingMigrations()).toBe(true);
    const config = loadConfig({ CS_DATABASE_URL: db.url, CS_LOCAL_MASTER_KEY: Buffer.alloc(32, 1).toString('base64') });
    await expect(boot(config, pino({ level: 'silent' }))).rejects.toThrow(ConfigError);
    await expect(boot(config, pino({ level: 'silent' }))).rejects.toThrow(/crypto-server migrate/);
  });

  test('migrations apply once and are idempotent', async () => {
    expect(await store.migrate()).toEqual(MIGRATIONS.map((M) => new M().name));
    expect(await store.migrate()).toEqual([]);
    expect(await store.hasPendingMigrations()).toBe(false);
  });

  test('the database itself enforces case-insensitive userName and unique externalId', async () => {
    await store.repos.users.insert(user(id(1), 'Alice', 'ext-1'), keys(id(1)));
    // Bypass the repository's mapping: the constraint, not code, must refuse the duplicate.
    await expect(store.dataSource.manager.insert(UserEntity, user(id(2), 'ALICE'))).rejects.toThrow();
    await expect(store.repos.users.insert(user(id(3), 'alice'), keys(id(3)))).rejects.toMatchObject({ target: 'userName' });
    await expect(store.repos.users.insert(user(id(4), 'bob', 'ext-1'), keys(id(4)))).rejects.toMatchObject({ target: 'externalId' });
    await expect(store.repos.users.insert(user(id(5), 'alice'), keys(id(5)))).rejects.toBeInstanceOf(ConflictError);
    expect(await store.repos.users.count()).toBe(1);
  });

  test('several users may have no externalId', async () => {
    await store.repos.users.insert(user(id(10), 'carol'), keys(id(10)));
    await store.repos.users.insert(user(id(11), 'dave'), keys(id(11)));
    expect((await store.repos.users.findByUserName('CAROL'))?.id).toBe(id(10));
  });

  test('a failed transaction leaves nothing behind', async () => {
    const before = await store.repos.users.count();
    await expect(
      store.transaction(async (t) => {
        await t.users.insert(user(id(20), 'erin'), keys(id(20)));
        await t.audit.append({ actor: 't', action: 'user.provision', outcome: 'success', targetId: id(20) });
        throw new Error('crash after the writes');
      }),
    ).rejects.toThrow('crash');
    expect(await store.repos.users.count()).toBe(before);
    expect(await store.repos.users.findKeys(id(20))).toBeNull();
    expect(await store.repos.audit.recent(10, { targetId: id(20) })).toHaveLength(0);
  });

  test('a failure record written during a transaction survives its rollback, without deadlock', async () => {
    await expect(
      store.transaction(async (t) => {
        await t.audit.append({ actor: 't', action: 'rolled.back', outcome: 'success' });
        await store.writeRegardless((w) => w.audit.append({ actor: 't', action: 'kept.inside', outcome: 'failure' }));
        await new Promise((r) => setTimeout(r, 30));
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    await store.writeRegardless((w) => w.audit.append({ actor: 't', action: 'kept.after', outcome: 'failure' }));
    const actions = (await store.repos.audit.recent(5)).map((e) => e.action);
    expect(actions).toContain('kept.inside');
    expect(actions).toContain('kept.after');
    expect(actions).not.toContain('rolled.back');
  });

  test('close() writes a failure record still queued behind its transaction first (a CLI that exits right after)', async () => {
    const other = await openStore(loadConfig({ CS_DATABASE_URL: db.url }));
    await expect(
      other.transaction(async () => {
        await other.writeRegardless((w) => w.audit.append({ actor: 't', action: 'kept.at.close', outcome: 'failure' }));
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    await other.close();
    expect((await store.repos.audit.recent(10)).map((e) => e.action)).toContain('kept.at.close');
  });

  test('deleting a user removes their keys and memberships (foreign keys cascade)', async () => {
    await store.repos.users.insert(user(id(30), 'frank'), keys(id(30)));
    const g = { id: id(31), displayName: 'Team', displayNameNorm: 'team', externalId: null, scimAttributes: '{}', createdAt: nowIso(), updatedAt: nowIso(), version: 1 };
    await store.repos.groups.insert(g, { groupId: g.id, keyAlg: 'ec-p256', publicJwk: '{}', privateJwe: 'j', wrappedMembershipKey: 'cs1.x', kekUri: 'local://default', createdAt: nowIso(), keyVersion: 1 });
    await store.repos.memberships.insertMany([{ groupId: g.id, userId: id(30), memberJwe: 'j', createdAt: nowIso() }]);
    await expect(
      store.repos.groups.insert({ ...g, id: id(32), displayNameNorm: 'team' }, { groupId: id(32), keyAlg: 'ec-p256', publicJwk: '{}', privateJwe: 'j', wrappedMembershipKey: 'x', kekUri: 'l', createdAt: nowIso(), keyVersion: 1 }),
    ).rejects.toMatchObject({ target: 'displayName' });
    expect(await store.repos.memberships.forGroup(g.id)).toEqual([expect.objectContaining({ groupId: g.id, userId: id(30), memberJwe: 'j' })]);
    await store.repos.users.delete(id(30));
    expect(await store.repos.users.findKeys(id(30))).toBeNull();
    expect(await store.repos.memberships.forGroup(g.id)).toHaveLength(0);
  });

  test('updates bump version and updatedAt; timestamps sort chronologically as text', async () => {
    await store.repos.users.insert(user(id(40), 'gina'), keys(id(40)));
    const later = new Date(Date.now() + 1000).toISOString();
    await store.repos.users.update(id(40), { active: false }, later);
    const u = await store.repos.users.findById(id(40));
    expect(u).toMatchObject({ active: false, version: 2, updatedAt: later });
    expect(typeof u!.active).toBe('boolean');
  });

  test('audit events are appended with their detail and read newest first', async () => {
    await store.repos.audit.append({ actor: 'a', action: 'x.one', outcome: 'success', requestId: 'r1' });
    await store.repos.audit.append({ actor: 'a', action: 'x.two', outcome: 'refused', detail: { error: 'unwrap_refused' } });
    const [latest, previous] = await store.repos.audit.recent(2);
    expect(latest).toMatchObject({ action: 'x.two', outcome: 'refused', detail: '{"error":"unwrap_refused"}' });
    expect(previous).toMatchObject({ action: 'x.one', requestId: 'r1' });
  });
});
