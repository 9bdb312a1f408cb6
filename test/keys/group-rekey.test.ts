import request from 'supertest';
import type { JWK } from 'jose';
import { testDatabaseNames } from '../support/databases';
import { createAuthFixture, signInForToken, type AuthFixture } from '../support/auth-fixture';
import { openUnderSymmetricKey, openWithPrivateKey } from '../../server/keys/jose-keys';
import { KeyService } from '../../server/keys/key-service';
import { KmsUnavailableError, UnwrapRefusedError } from '../../server/errors';
import { GroupKeyVersionEntity, GroupMemberKeyEntity } from '../../entities';

const op = { actor: 'test' };

interface BundleVersion {
  version: number;
  memberJwe: string;
  groupPublicJwk: JWK;
  groupPrivateJwe: string;
}
interface BundleGroup extends Omit<BundleVersion, 'version'> {
  groupId: string;
  keyVersion: number;
  versions: BundleVersion[];
}
interface Bundle {
  privateJwe: string;
  passwordKey: string;
  groups: BundleGroup[];
}

/**
 * Rekey on member removal (issue 8): a removal makes a new group key version sealed to the
 * remaining members with one KMS wrap; members open every version, a member added later too;
 * the removed member gets nothing created after. Bundles come from the key API with real tokens.
 */
describe.each(testDatabaseNames())('group rekey on member removal (%s)', (kind) => {
  let f: AuthFixture;
  const ids: Record<string, string> = {};
  const tokens: Record<string, string> = {};
  let calls: { wrap: number; unwrap: number };
  let failNextWrap: Error | undefined;
  /** Plaintext membership keys handed to the KMS (wrap) and handed back by it (unwrap). */
  let plaintexts: Uint8Array[] = [];
  let restore: () => void;

  beforeAll(async () => {
    f = await createAuthFixture(kind);
    for (const name of ['alice', 'bob', 'carol', 'dave']) {
      ids[name] = (await f.keys.provisionUser({ userName: `${name}@example.com` }, op)).id;
      tokens[name] = await signInForToken(f, { nameId: `${name}@example.com` });
    }
    const adapter = f.kms.forUri(f.config.kms.kekUri);
    const wrap = adapter.wrap.bind(adapter);
    const unwrap = adapter.unwrap.bind(adapter);
    const w = jest.spyOn(adapter, 'wrap').mockImplementation(async (...args) => {
      calls.wrap++;
      plaintexts.push(args[1]);
      const e = failNextWrap;
      failNextWrap = undefined;
      if (e) throw e;
      return wrap(...args);
    });
    const u = jest.spyOn(adapter, 'unwrap').mockImplementation(async (...args) => {
      calls.unwrap++;
      const key = await unwrap(...args);
      plaintexts.push(key);
      return key;
    });
    restore = () => {
      w.mockRestore();
      u.mockRestore();
    };
  });
  afterAll(async () => {
    restore?.();
    await f?.cleanupAll();
  });
  beforeEach(() => {
    calls = { wrap: 0, unwrap: 0 };
  });

  const bundle = async (name: string): Promise<Bundle> => {
    const res = await request(f.app).get('/api/keys/me').set('Authorization', `Bearer ${tokens[name]}`).expect(200);
    return res.body as Bundle;
  };
  const privateKeyOf = async (b: Bundle): Promise<JWK> => openUnderSymmetricKey(b.privateJwe, Buffer.from(b.passwordKey, 'base64url'));
  /** Opens every version of one group in a member's bundle: version → membership key. */
  const openAll = async (b: Bundle, groupId: string): Promise<Map<number, Buffer>> => {
    const g = b.groups.find((x) => x.groupId === groupId)!;
    const priv = await privateKeyOf(b);
    const out = new Map<number, Buffer>();
    for (const v of g.versions) {
      const gmk = await openWithPrivateKey(v.memberJwe, priv);
      const groupPrivate = await openUnderSymmetricKey(v.groupPrivateJwe, gmk);
      expect(groupPrivate.d).toBeDefined();
      expect(groupPrivate.x ?? groupPrivate.n).toBe(v.groupPublicJwk.x ?? v.groupPublicJwk.n);
      out.set(v.version, gmk);
    }
    return out;
  };
  const memberKeyRows = (groupId: string, userId: string) => f.store.dataSource.manager.count(GroupMemberKeyEntity, { where: { groupId, userId } });

  test('removal: one KMS wrap; remaining members open old and new versions; the removed member opens nothing made after', async () => {
    // Fillers make the group bigger than one member: a rotation still costs one KMS call.
    const fillers: string[] = [];
    for (let i = 0; i < 8; i++) fillers.push((await f.keys.provisionUser({ userName: `filler-${i}@example.com` }, op)).id);
    const g = await f.keys.provisionGroup({ displayName: 'Rekey', memberIds: [ids.alice, ids.bob, ids.carol, ...fillers] }, op);
    const bobBefore = await bundle('bob');
    const bobOldGmk = (await openAll(bobBefore, g.id)).get(1)!;

    calls = { wrap: 0, unwrap: 0 };
    expect(await f.keys.removeMembers(g.id, [ids.bob], op)).toBe(1);
    expect(calls).toEqual({ wrap: 1, unwrap: 0 });

    const alice = await bundle('alice');
    const ag = alice.groups.find((x) => x.groupId === g.id)!;
    expect(ag.keyVersion).toBe(2);
    expect(ag.versions.map((v) => v.version)).toEqual([2, 1]);
    expect(ag.memberJwe).toBe(ag.versions[0].memberJwe); // top-level fields are the current version
    expect(ag.groupPublicJwk).toEqual(ag.versions[0].groupPublicJwk);
    const aliceGmks = await openAll(alice, g.id);
    expect(aliceGmks.get(1)!.equals(bobOldGmk)).toBe(true);
    expect(aliceGmks.get(2)!.equals(bobOldGmk)).toBe(false);
    // SCIM's memberKeys (group_members) carry the current version too.
    const current = (await f.store.repos.memberships.forGroup(g.id)).find((m) => m.userId === ids.alice)!;
    expect(current.memberJwe).toBe(ag.versions[0].memberJwe);

    // Bob's old token still works for his own keys, but the group is gone from his bundle...
    expect((await bundle('bob')).groups.find((x) => x.groupId === g.id)).toBeUndefined();
    expect(await memberKeyRows(g.id, ids.bob)).toBe(0);
    // ...his cached v1 membership key does not open version 2's private key...
    await expect(openUnderSymmetricKey(ag.versions[0].groupPrivateJwe, bobOldGmk)).rejects.toThrow();
    // ...and his private key opens no member JWE of version 2.
    const bobPriv = await privateKeyOf(bobBefore);
    await expect(openWithPrivateKey(ag.versions[0].memberJwe, bobPriv)).rejects.toThrow();
    const v2Rows = await f.store.dataSource.manager.find(GroupMemberKeyEntity, { where: { groupId: g.id, version: 2 } });
    expect(v2Rows.map((r) => r.userId).sort()).toEqual([ids.alice, ids.carol, ...fillers].sort());
    for (const r of v2Rows) await expect(openWithPrivateKey(r.memberJwe, bobPriv)).rejects.toThrow();

    // A member added after the rotation receives every version: one unwrap per version, no wrap.
    calls = { wrap: 0, unwrap: 0 };
    expect(await f.keys.addMembers(g.id, [ids.dave], op)).toEqual([ids.dave]);
    expect(calls).toEqual({ wrap: 0, unwrap: 2 });
    const dave = await openAll(await bundle('dave'), g.id);
    expect([...dave.keys()]).toEqual([2, 1]);
    expect(dave.get(1)!.equals(aliceGmks.get(1)!)).toBe(true);
    expect(dave.get(2)!.equals(aliceGmks.get(2)!)).toBe(true);

    // Many removals in one change rotate once.
    calls = { wrap: 0, unwrap: 0 };
    expect(await f.keys.removeMembers(g.id, [ids.carol, fillers[0], fillers[1]], op)).toBe(3);
    expect(calls).toEqual({ wrap: 1, unwrap: 0 });
    const after = (await bundle('alice')).groups.find((x) => x.groupId === g.id)!;
    expect(after.versions.map((v) => v.version)).toEqual([3, 2, 1]);
    await openAll(await bundle('alice'), g.id);
    const [audit] = await f.store.repos.audit.recent(1, { action: 'group.key.rotate', targetId: g.id });
    expect(audit).toMatchObject({ outcome: 'success', detail: JSON.stringify({ version: 3, members: 8 }) });
  });

  test('a KMS fault during rotation leaves membership and keys unchanged, with a failure audit row', async () => {
    const g = await f.keys.provisionGroup({ displayName: 'Fault', memberIds: [ids.alice, ids.bob] }, op);
    const before = await f.store.repos.groups.findKeys(g.id);
    failNextWrap = new KmsUnavailableError('injected outage');
    await expect(f.keys.removeMembers(g.id, [ids.bob], op)).rejects.toBeInstanceOf(KmsUnavailableError);
    expect(await f.store.repos.groups.findKeys(g.id)).toEqual(before);
    expect((await f.store.repos.memberships.memberIds(g.id)).sort()).toEqual([ids.alice, ids.bob].sort());
    expect(await f.store.dataSource.manager.count(GroupKeyVersionEntity, { where: { groupId: g.id } })).toBe(1);
    expect(await memberKeyRows(g.id, ids.bob)).toBe(1);
    expect((await bundle('bob')).groups.find((x) => x.groupId === g.id)?.keyVersion).toBe(1);
    const [e] = await f.store.repos.audit.recent(1, { action: 'group.key.rotate', targetId: g.id });
    expect(e).toMatchObject({ outcome: 'failure', detail: '{"error":"kms_unavailable"}' });
    // The retry, with the KMS back, rotates.
    await expect(f.keys.removeMembers(g.id, [ids.bob], op)).resolves.toBe(1);
    expect((await f.store.repos.groups.findKeys(g.id))!.keyVersion).toBe(2);
  });

  test('a KMS fault while adding a member writes nothing but the failure audit row', async () => {
    const g = await f.keys.provisionGroup({ displayName: 'Add fault', memberIds: [ids.alice] }, op);
    const adapter = f.kms.forUri(f.config.kms.kekUri);
    // The counting spy of beforeAll answers once with an outage, then as before.
    jest.spyOn(adapter, 'unwrap').mockRejectedValueOnce(new KmsUnavailableError('injected outage'));
    await expect(f.keys.addMembers(g.id, [ids.carol], op)).rejects.toBeInstanceOf(KmsUnavailableError);
    expect(await f.store.repos.memberships.memberIds(g.id)).toEqual([ids.alice]);
    expect(await memberKeyRows(g.id, ids.carol)).toBe(0);
    const [e] = await f.store.repos.audit.recent(1, { action: 'group.member.add', targetId: g.id });
    expect(e).toMatchObject({ outcome: 'failure', detail: '{"error":"kms_unavailable"}' });
  });

  test('every plaintext membership key, wrapped or unwrapped, is zeroed once the write is done', async () => {
    plaintexts = [];
    const g = await f.keys.provisionGroup({ displayName: 'Zeroed', memberIds: [ids.alice, ids.bob] }, op);
    await f.keys.removeMembers(g.id, [ids.bob], op); // rotation: a new key wrapped
    await f.keys.addMembers(g.id, [ids.carol], op); // two versions unwrapped
    expect(plaintexts).toHaveLength(4);
    for (const k of plaintexts) expect(Buffer.from(k).every((b) => b === 0)).toBe(true);
  });

  test("one version's envelope does not open as another version's (the version is bound)", async () => {
    const g = await f.keys.provisionGroup({ displayName: 'Bound versions', memberIds: [ids.alice, ids.bob, ids.carol] }, op);
    await f.keys.removeMembers(g.id, [ids.bob], op);
    await f.keys.removeMembers(g.id, [ids.carol], op);
    const [, v2] = await f.store.repos.groups.versions(g.id);
    await f.store.dataSource.manager.update(GroupKeyVersionEntity, { groupId: g.id, version: 3 }, { wrappedMembershipKey: v2.wrappedMembershipKey });
    await expect(f.keys.addMembers(g.id, [ids.dave], op)).rejects.toBeInstanceOf(UnwrapRefusedError);
    expect(await f.store.repos.memberships.memberIds(g.id)).toEqual([ids.alice]);
  });

  test('two concurrent removals: both rotate, versions are consistent, nobody removed is sealed into the latest', async () => {
    const people: string[] = [];
    for (let i = 0; i < 6; i++) people.push((await f.keys.provisionUser({ userName: `conc-rm-${i}@example.com` }, op)).id);
    const g = await f.keys.provisionGroup({ displayName: 'Concurrent removals', memberIds: people }, op);
    const results = await Promise.allSettled([f.keys.removeMembers(g.id, [people[0]], op), f.keys.removeMembers(g.id, [people[1]], op)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    const keys = (await f.store.repos.groups.findKeys(g.id))!;
    const versions = await f.store.repos.groups.versions(g.id);
    expect(versions.map((v) => v.version)).toEqual([1, 2, 3]);
    expect(keys.keyVersion).toBe(3);
    expect(keys.publicJwk).toBe(versions[2].publicJwk);
    const latest = await f.store.dataSource.manager.find(GroupMemberKeyEntity, { where: { groupId: g.id, version: 3 } });
    expect(latest.map((r) => r.userId).sort()).toEqual(people.slice(2).sort());
    expect((await f.store.repos.memberships.memberIds(g.id)).sort()).toEqual(people.slice(2).sort());
    for (const removed of people.slice(0, 2)) expect(await memberKeyRows(g.id, removed)).toBe(0);
  });

  test('CS_GROUP_REKEY=manual: a removal only deletes the JWEs; no KMS call, no new version', async () => {
    const manual = new KeyService(f.store, f.kms, { kekUri: f.config.kms.kekUri, kekMode: 'shared', userKeyAlgorithm: 'ec-p256', groupRekey: 'manual' });
    const g = await manual.provisionGroup({ displayName: 'Manual', memberIds: [ids.alice, ids.bob] }, op);
    calls = { wrap: 0, unwrap: 0 };
    expect(await manual.removeMembers(g.id, [ids.bob], op)).toBe(1);
    expect(calls).toEqual({ wrap: 0, unwrap: 0 });
    expect((await f.store.repos.groups.findKeys(g.id))!.keyVersion).toBe(1);
    expect(await memberKeyRows(g.id, ids.bob)).toBe(0);
  });
});
