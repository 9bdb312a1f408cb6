import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { openUnderSymmetricKey, openWithPrivateKey } from '../../server/keys/jose-keys';
import { GroupKeyVersionEntity, GroupMemberKeyEntity } from '../../entities';

const op = { actor: 'test' };

/**
 * The group-key-versions migration on a database that already has groups: each becomes version 1
 * with the keys and member JWEs it had (its envelope keeps the version-less binding), and keeps
 * working — members added later open it, a removal rotates it. Its `down` runs too.
 */
describe.each(testDatabaseNames())('group key versions migration (%s)', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  test('existing groups become version 1 with their keys and member JWEs, and keep working', async () => {
    const u1 = await ctx.keys.provisionUser({ userName: 'pre-existing@example.com' }, op);
    const u2 = await ctx.keys.provisionUser({ userName: 'joins-later@example.com' }, op);
    const g = await ctx.keys.provisionGroup({ displayName: 'Before versions', memberIds: [u1.id] }, op);
    const ds = ctx.store.dataSource;

    // Back to the schema before versions (the group's rows stay), then forward again.
    const qr = ds.createQueryRunner();
    try {
      for (let i = 0; i < 20 && (await qr.hasTable('group_key_versions')); i++) await ds.undoLastMigration({ transaction: 'each' });
      expect(await qr.hasTable('group_key_versions')).toBe(false);
      expect(await qr.hasColumn('group_keys', 'key_version')).toBe(false);
    } finally {
      await qr.release();
    }
    expect(await ds.query('SELECT group_id FROM group_keys')).toHaveLength(1);
    await ds.runMigrations({ transaction: 'each' });

    const keys = (await ctx.store.repos.groups.findKeys(g.id))!;
    expect(keys.keyVersion).toBe(1);
    const versions = await ds.manager.find(GroupKeyVersionEntity, { where: { groupId: g.id } });
    expect(versions).toEqual([
      { groupId: g.id, version: 1, keyAlg: keys.keyAlg, publicJwk: keys.publicJwk, privateJwe: keys.privateJwe, wrappedMembershipKey: keys.wrappedMembershipKey, kekUri: keys.kekUri, createdAt: keys.createdAt },
    ]);
    const [member] = await ctx.store.repos.memberships.forGroup(g.id);
    expect(await ds.manager.find(GroupMemberKeyEntity, { where: { groupId: g.id } })).toEqual([
      { groupId: g.id, userId: u1.id, version: 1, memberJwe: member.memberJwe, createdAt: member.createdAt },
    ]);

    expect(await ctx.keys.addMembers(g.id, [u2.id], op)).toEqual([u2.id]);
    const b = await ctx.keys.getUserKeyBundle(u2.id, op);
    const priv = await openUnderSymmetricKey(b.privateJwe, b.passwordKey);
    const gmk = await openWithPrivateKey(b.groups[0].memberJwe, priv);
    expect((await openUnderSymmetricKey(b.groups[0].groupPrivateJwe, gmk)).d).toBeDefined();
    expect(b.groups[0]).toMatchObject({ groupId: g.id, keyVersion: 1 });

    await ctx.keys.removeMembers(g.id, [u1.id], op);
    expect((await ctx.keys.getUserKeyBundle(u2.id, op)).groups[0].versions.map((v) => v.version)).toEqual([2, 1]);
  });
});
