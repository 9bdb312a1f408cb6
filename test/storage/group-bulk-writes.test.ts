import { randomBytes } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { nowIso } from '../../entities/columns';
import { GroupKeysEntity, GroupKeyVersionEntity, GroupMemberEntity, GroupMemberKeyEntity, UserEntity, UserKeysEntity, type GroupMemberKeyRow, type GroupMemberRow, type UserRow } from '../../entities';
import { MembershipsRepository } from '../../server/repositories/groups';
import { rowsPerStatement } from '../../server/repositories/bulk-rows';
import { generateKeyPair } from '../../server/keys/jose-keys';
import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';

const op = { actor: 'test' };
const N = 300;
const id = (g: number, n: number) => `00000000-0000-4000-${String(8000 + g)}-${String(n).padStart(12, '0')}`;
const user = (uid: string): UserRow => ({
  id: uid, userName: `${uid}@example.com`, userNameNorm: `${uid}@example.com`, externalId: null, displayName: null, email: null, givenName: null,
  familyName: null, active: true, scimAttributes: '{}', createdAt: nowIso(), updatedAt: nowIso(), deletedAt: null, version: 1,
});
const jwe = () => randomBytes(300).toString('base64url');

/** The writes as they were before issue 10 (TypeORM's insert builder), the reference for the rows. */
const typeormPath = {
  insertMany: async (m: EntityManager, rows: GroupMemberRow[]) => {
    for (let i = 0; i < rows.length; i += 500) await m.insert(GroupMemberEntity, rows.slice(i, i + 500));
  },
  insertKeys: async (m: EntityManager, rows: GroupMemberKeyRow[]) => {
    for (let i = 0; i < rows.length; i += 500) await m.insert(GroupMemberKeyEntity, rows.slice(i, i + 500));
  },
  setCurrentJwes: async (m: EntityManager, rows: GroupMemberRow[]) => {
    for (let i = 0; i < rows.length; i += 500) {
      await m.createQueryBuilder().insert().into(GroupMemberEntity).values(rows.slice(i, i + 500)).orUpdate(['member_jwe'], ['group_id', 'user_id']).execute();
    }
  },
};

/**
 * The multi-row statements a group rotation writes (server/repositories/bulk-rows.ts) write
 * exactly the rows TypeORM's builder wrote, and a failure part-way leaves no partial rotation.
 */
describe.each(testDatabaseNames())('group bulk writes (%s)', (kind) => {
  let t: TestContext;
  const users = Array.from({ length: N }, (_, i) => id(0, i));

  beforeAll(async () => {
    t = await createTestContext(kind);
    const m = t.store.dataSource.manager;
    // Live users with a public key (one pair for all: sealing is not what these tests are about).
    const publicJwk = JSON.stringify((await generateKeyPair('ec-p256')).publicJwk);
    for (let i = 0; i < N; i += 100) {
      const chunk = users.slice(i, i + 100);
      await m.insert(UserEntity, chunk.map(user));
      await m.insert(UserKeysEntity, chunk.map((userId) => ({ userId, keyAlg: 'ec-p256', publicJwk, privateJwe: 'jwe', wrappedPasswordKey: 'cs1.x', kekUri: t.config.kms.kekUri, createdAt: nowIso() })));
    }
  }, 60_000);
  afterAll(async () => {
    await t?.cleanup();
  });

  const newGroup = async (name: string): Promise<string> => (await t.keys.provisionGroup({ displayName: name }, op)).id;
  /** A group's member rows without the group id, in user order. */
  const membersOf = async (groupId: string) =>
    (await t.store.dataSource.manager.find(GroupMemberEntity, { where: { groupId }, order: { userId: 'ASC' } })).map(({ groupId: _, ...r }) => r);
  const keysOf = async (groupId: string) =>
    (await t.store.dataSource.manager.find(GroupMemberKeyEntity, { where: { groupId }, order: { userId: 'ASC', version: 'ASC' } })).map(({ groupId: _, ...r }) => r);

  test('memberships, member JWEs and the current-JWE upsert equal the TypeORM-built rows', async () => {
    const [a, b] = [await newGroup('typeorm'), await newGroup('bulk')];
    const created = nowIso();
    const members = users.map((userId) => ({ userId, memberJwe: jwe(), createdAt: created }));
    const later = new Date(Date.now() + 60_000).toISOString();
    const rotated = users.slice(0, N - 1).map((userId) => ({ userId, memberJwe: jwe(), createdAt: later }));
    const keys = [...members.map((r) => ({ ...r, version: 1 })), ...rotated.map((r) => ({ ...r, version: 2 }))];
    await t.store.dataSource.transaction(async (m) => {
      await typeormPath.insertMany(m, members.map((r) => ({ ...r, groupId: a })));
      await typeormPath.setCurrentJwes(m, rotated.map((r) => ({ ...r, groupId: a })));
      await typeormPath.insertKeys(m, keys.map((r) => ({ ...r, groupId: a })));
      const repo = new MembershipsRepository(m);
      await repo.insertMany(members.map((r) => ({ ...r, groupId: b })));
      await repo.setCurrentJwes(rotated.map((r) => ({ ...r, groupId: b })));
      await repo.insertKeys(keys.map((r) => ({ ...r, groupId: b })));
    });
    const [ma, mb] = [await membersOf(a), await membersOf(b)];
    expect(mb).toHaveLength(N);
    expect(mb).toEqual(ma);
    // The upsert changes only member_jwe: created_at stays the membership's.
    expect(mb[0]).toEqual({ userId: users[0], memberJwe: rotated[0].memberJwe, createdAt: created });
    expect(mb[N - 1]).toEqual({ userId: users[N - 1], memberJwe: members[N - 1].memberJwe, createdAt: created });
    const [ka, kb] = [await keysOf(a), await keysOf(b)];
    expect(kb).toHaveLength(2 * N - 1);
    expect(kb).toEqual(ka);
  });

  test('a statement failing after earlier chunks were written leaves none of them (one transaction)', async () => {
    const g = await newGroup('chunks');
    // More rows than one statement takes, the last one a duplicate key: the second statement fails.
    const versions = Math.ceil((rowsPerStatement(5) + 1) / N);
    const rows: GroupMemberKeyRow[] = [];
    for (let version = 1; version <= versions; version++) for (const userId of users) rows.push({ groupId: g, userId, version, memberJwe: jwe(), createdAt: nowIso() });
    rows.push({ ...rows[rows.length - 1], memberJwe: jwe() });
    expect(rows.length).toBeGreaterThan(rowsPerStatement(5));
    await expect(t.store.transaction((tx) => tx.memberships.insertKeys(rows))).rejects.toThrow();
    expect(await keysOf(g)).toEqual([]);
  });

  test('a database error in the middle of a rotation leaves the group as it was', async () => {
    const g = (await t.keys.provisionGroup({ displayName: 'rotating', memberIds: [] }, op)).id;
    // Members through the repository (sealing is not under test here), version 1 as provisioned.
    const created = nowIso();
    await t.store.transaction(async (tx) => {
      await tx.memberships.insertMany(users.map((userId) => ({ groupId: g, userId, memberJwe: jwe(), createdAt: created })));
      await tx.memberships.insertKeys(users.map((userId) => ({ groupId: g, userId, version: 1, memberJwe: jwe(), createdAt: created })));
    });
    const snapshot = async () => {
      const m = t.store.dataSource.manager;
      return {
        keys: await m.findOne(GroupKeysEntity, { where: { groupId: g } }),
        versions: await m.find(GroupKeyVersionEntity, { where: { groupId: g }, order: { version: 'ASC' } }),
        members: await membersOf(g),
        memberKeys: await keysOf(g),
      };
    };
    const before = await snapshot();
    const insertKeys = MembershipsRepository.prototype.insertKeys;
    const spy = jest.spyOn(MembershipsRepository.prototype, 'insertKeys').mockImplementation(async function (this: MembershipsRepository, rows) {
      await insertKeys.call(this, rows.slice(0, rows.length >> 1)); // half the new version's JWEs are written…
      throw new Error('connection reset'); // …then the database fails
    });
    try {
      await expect(t.keys.removeMembers(g, [users[0]], op)).rejects.toThrow('connection reset');
      expect(spy).toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
    expect(await snapshot()).toEqual(before);
  }, 60_000);
});
