import { randomBytes } from 'node:crypto';
import { decodeProtectedHeader, type JWK } from 'jose';
import { createTestContext, type TestContext } from '../support/context';
import { SpyAdapter } from '../support/spy-kms';
import { KeyService } from '../../server/keys/key-service';
import { openUnderSymmetricKey, openWithPrivateKey } from '../../server/keys/jose-keys';
import { decodeEnvelope, encodeEnvelope } from '../../kms-adapters/envelope';
import { USER_KEY_ALGORITHMS } from '../../server/config/core';
import {
  BadRequestError, ConflictError, InactiveUserError, KmsUnavailableError, MalformedEnvelopeError, NotFoundError, UnknownKekError, UnwrapRefusedError,
} from '../../server/errors';

const op = { actor: 'test', requestId: 'req-1' };

describe('key service', () => {
  let ctx: TestContext;
  let spy: SpyAdapter;
  let keys: KeyService;
  const service = (opts: Partial<ConstructorParameters<typeof KeyService>[2]> = {}) =>
    new KeyService(ctx.store, spy.registry(), { kekUri: 'local://shared', kekMode: 'shared', userKeyAlgorithm: 'ec-p256', ...opts });

  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
    spy = new SpyAdapter();
    keys = service();
  });
  afterAll(async () => ctx?.cleanup());
  beforeEach(() => {
    spy.calls = { wrap: 0, unwrap: 0, createKey: 0, check: 0 };
    spy.wrappedPlaintexts = [];
  });

  describe('provisioning a user', () => {
    test('creates a password key, a key pair, the private key as JWE under the password key and the public key as JWK', async () => {
      const u = await keys.provisionUser({ userName: 'ann@example.com', externalId: 'e-ann' }, op);
      expect(u.keys.publicJwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', use: 'enc' });
      expect(u.keys.publicJwk).not.toHaveProperty('d');
      expect(decodeProtectedHeader(u.keys.privateJwe)).toMatchObject({ alg: 'A256KW', enc: 'A256GCM', cty: 'jwk+json', kid: u.keys.publicJwk.kid });
      expect(decodeEnvelope(u.keys.wrappedPasswordKey).kekUri).toBe('local://shared');

      const pk = await keys.unwrapPasswordKey(u.id, op);
      const priv = await openUnderSymmetricKey(u.keys.privateJwe, pk);
      expect(priv).toMatchObject({ kty: 'EC', x: u.keys.publicJwk.x, y: u.keys.publicJwk.y });
      expect(priv.d).toBeDefined();
    });

    test('zeroes the plaintext password key after wrapping it', async () => {
      await keys.provisionUser({ userName: 'zed' }, op);
      expect(spy.wrappedPlaintexts).toHaveLength(1);
      expect(Buffer.from(spy.wrappedPlaintexts[0]).every((b) => b === 0)).toBe(true);
    });

    test('writes an audit event in the same transaction, with no key material', async () => {
      const u = await keys.provisionUser({ userName: 'audited' }, op);
      const [e] = await ctx.store.repos.audit.recent(1, { targetId: u.id });
      expect(e).toMatchObject({ action: 'user.provision', outcome: 'success', actor: 'test', requestId: 'req-1', kekUri: 'local://shared' });
      expect(JSON.stringify(e)).not.toContain(decodeEnvelope(u.keys.wrappedPasswordKey).ciphertext.toString('base64url'));
    });

    test.each(USER_KEY_ALGORITHMS.filter((a) => a !== 'rsa-4096'))('works with %s user keys, and members of any kind can open group keys', async (alg) => {
      const s = service({ userKeyAlgorithm: alg });
      const u = await s.provisionUser({ userName: `alg-${alg}` }, op);
      expect(u.keys.publicJwk.kty).toBe(alg.startsWith('rsa') ? 'RSA' : 'EC');
      if (alg.startsWith('rsa')) expect(Buffer.from(u.keys.publicJwk.n!, 'base64url').length * 8).toBe(Number(alg.slice(4)));
      const g = await keys.provisionGroup({ displayName: `group-${alg}`, memberIds: [u.id] }, op);
      const bundle = await s.getUserKeyBundle(u.id, op);
      const priv = await openUnderSymmetricKey(bundle.privateJwe, bundle.passwordKey);
      const gmk = await openWithPrivateKey(bundle.groups[0].memberJwe, priv);
      const groupPriv = await openUnderSymmetricKey(g.keys.privateJwe, gmk);
      expect(groupPriv.x ?? groupPriv.n).toBe(g.keys.publicJwk.x ?? g.keys.publicJwk.n);
    });

    test('a KMS failure writes nothing: no user, no keys, a failure audit event; the retry succeeds', async () => {
      const before = await ctx.store.repos.users.count();
      spy.failNext = new KmsUnavailableError('injected outage');
      await expect(keys.provisionUser({ userName: 'outage' }, op)).rejects.toBeInstanceOf(KmsUnavailableError);
      expect(await ctx.store.repos.users.count()).toBe(before);
      expect(await ctx.store.repos.users.findByUserName('outage')).toBeNull();
      const [e] = await ctx.store.repos.audit.recent(1, { action: 'user.provision' });
      expect(e).toMatchObject({ outcome: 'failure', detail: '{"error":"kms_unavailable"}' });
      await expect(keys.provisionUser({ userName: 'outage' }, op)).resolves.toMatchObject({ userName: 'outage' });
    });

    test('a database failure after wrapping leaves no partial user (duplicate userName)', async () => {
      await keys.provisionUser({ userName: 'dup' }, op);
      const before = await ctx.store.repos.users.count();
      await expect(keys.provisionUser({ userName: 'DUP' }, op)).rejects.toBeInstanceOf(ConflictError);
      expect(await ctx.store.repos.users.count()).toBe(before);
    });

    test('concurrent provisioning of the same user yields exactly one user', async () => {
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => keys.provisionUser({ userName: 'race@example.com' }, op)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results.filter((r) => r.status === 'rejected')) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ConflictError);
    });

    test('per-user KEKs: each user gets their own KEK, recorded; a failed provisioning leaves a visible orphan', async () => {
      const s = service({ kekMode: 'per-user' });
      const u = await s.provisionUser({ userName: 'own-kek' }, op);
      expect(u.keys.kekUri).toBe(`local://user-${u.id}`);
      expect((await ctx.store.repos.keks.byState('active')).map((k) => k.uri)).toContain(u.keys.kekUri);
      spy.failNext = new KmsUnavailableError('outage after createKey');
      await expect(s.provisionUser({ userName: 'orphaned' }, op)).rejects.toBeInstanceOf(KmsUnavailableError);
      const orphans = await ctx.store.repos.keks.byState('pending');
      expect(orphans).toHaveLength(1);
      expect(orphans[0]).toMatchObject({ ownerType: 'user', scheme: 'local' });
      expect(await ctx.store.repos.users.findById(orphans[0].ownerId!)).toBeNull();
    });
  });

  describe('binding: a key opens only for its owner and purpose', () => {
    let a: Awaited<ReturnType<KeyService['provisionUser']>>;
    let b: Awaited<ReturnType<KeyService['provisionUser']>>;
    beforeAll(async () => {
      a = await keys.provisionUser({ userName: 'user-a' }, op);
      b = await keys.provisionUser({ userName: 'user-b' }, op);
    });

    test("user B presenting user A's wrapped password key is refused by the KMS and audited", async () => {
      const calls = spy.calls.unwrap;
      await expect(keys.unwrapPasswordKey(b.id, op, a.keys.wrappedPasswordKey)).rejects.toBeInstanceOf(UnwrapRefusedError);
      expect(spy.calls.unwrap).toBe(calls + 1); // refused cryptographically, not by a lookup
      const [e] = await ctx.store.repos.audit.recent(1, { targetId: b.id });
      expect(e).toMatchObject({ action: 'password-key.unwrap', outcome: 'refused', detail: '{"error":"unwrap_refused"}' });
    });

    test('each user opens their own blob', async () => {
      const pkA = await keys.unwrapPasswordKey(a.id, op, a.keys.wrappedPasswordKey);
      const pkB = await keys.unwrapPasswordKey(b.id, op);
      expect(pkA.equals(pkB)).toBe(false);
    });

    test('a data key is bound to user and label', async () => {
      const dk = randomBytes(32);
      const env = await keys.wrapDataKey(a.id, dk, op, 'file-42');
      expect((await keys.unwrapDataKey(a.id, env, op, 'file-42')).equals(dk)).toBe(true);
      await expect(keys.unwrapDataKey(b.id, env, op, 'file-42')).rejects.toBeInstanceOf(UnwrapRefusedError);
      await expect(keys.unwrapDataKey(a.id, env, op, 'file-43')).rejects.toBeInstanceOf(UnwrapRefusedError);
      await expect(keys.unwrapDataKey(a.id, env, op)).rejects.toBeInstanceOf(UnwrapRefusedError);
      // a password-key blob is not a data key, even for its owner
      await expect(keys.unwrapDataKey(a.id, a.keys.wrappedPasswordKey, op)).rejects.toBeInstanceOf(UnwrapRefusedError);
    });

    test('malformed, tampered and unknown-KEK blobs are refused with typed errors', async () => {
      await expect(keys.unwrapPasswordKey(a.id, op, 'garbage')).rejects.toBeInstanceOf(MalformedEnvelopeError);
      const e = decodeEnvelope(a.keys.wrappedPasswordKey);
      const tampered = Buffer.from(e.ciphertext);
      tampered[20] ^= 1;
      await expect(keys.unwrapPasswordKey(a.id, op, encodeEnvelope({ ...e, ciphertext: tampered }))).rejects.toBeInstanceOf(UnwrapRefusedError);
      await expect(keys.unwrapPasswordKey(a.id, op, encodeEnvelope({ ...e, kekUri: 'aws-kms://arn:aws:kms:eu-west-1:1:key/x' }))).rejects.toBeInstanceOf(UnknownKekError);
      await expect(keys.unwrapPasswordKey(a.id, op, encodeEnvelope({ ...e, kekUri: 'local://other' }))).rejects.toBeInstanceOf(UnknownKekError);
    });

    test('a client-brought envelope naming a KEK of its choice never reaches a KMS, and the refusal is audited', async () => {
      const e = decodeEnvelope(a.keys.wrappedPasswordKey);
      const calls = spy.calls.unwrap;
      const evil = `vault-transit://attacker.example:8200/transit/keys/${'x'.repeat(600)}`;
      await expect(keys.unwrapPasswordKey(a.id, op, encodeEnvelope({ ...e, kekUri: evil }))).rejects.toBeInstanceOf(UnknownKekError);
      await expect(keys.unwrapDataKey(a.id, encodeEnvelope({ ...e, kekUri: 'local://not-configured' }), op)).rejects.toBeInstanceOf(UnknownKekError);
      expect(spy.calls.unwrap).toBe(calls);
      const [dataKeyRefusal, pkRefusal] = await ctx.store.repos.audit.recent(2, { targetId: a.id });
      expect(dataKeyRefusal).toMatchObject({ action: 'data-key.unwrap', outcome: 'refused', detail: '{"error":"unknown_kek"}' });
      expect(pkRefusal).toMatchObject({ action: 'password-key.unwrap', outcome: 'refused' });
      expect(pkRefusal.kekUri!.length).toBeLessThanOrEqual(512);
    });

    test('rotation: blobs under a previous KEK still open after the KEK changes', async () => {
      const rotated = service({ kekUri: 'local://shared-2026' });
      expect((await rotated.unwrapPasswordKey(a.id, op)).length).toBe(32);
      const c = await rotated.provisionUser({ userName: 'after-rotation' }, op);
      expect(decodeEnvelope(c.keys.wrappedPasswordKey).kekUri).toBe('local://shared-2026');
    });
  });

  describe('groups', () => {
    test('adding members costs one KMS unwrap for the whole batch and no other KMS call', async () => {
      const users = await Promise.all([1, 2, 3].map((i) => keys.provisionUser({ userName: `member-${i}` }, op)));
      const g = await keys.provisionGroup({ displayName: 'Engineering' }, op);
      spy.calls = { wrap: 0, unwrap: 0, createKey: 0, check: 0 };
      expect(await keys.addMembers(g.id, users.map((u) => u.id), op)).toHaveLength(3);
      expect(spy.calls).toEqual({ wrap: 0, unwrap: 1, createKey: 0, check: 0 });
      expect(await keys.addMembers(g.id, [users[0].id], op)).toEqual([]); // already a member: no KMS call
      expect(spy.calls.unwrap).toBe(1);

      for (const u of users) {
        const bundle = await keys.getUserKeyBundle(u.id, op);
        const priv: JWK = await openUnderSymmetricKey(bundle.privateJwe, bundle.passwordKey);
        const gmk = await openWithPrivateKey(bundle.groups[0].memberJwe, priv);
        expect((await openUnderSymmetricKey(bundle.groups[0].groupPrivateJwe, gmk)).d).toBeDefined();
      }
    });

    test("one member cannot open another member's membership JWE", async () => {
      const [x, y] = await Promise.all(['jwe-x', 'jwe-y'].map((n) => keys.provisionUser({ userName: n }, op)));
      const g = await keys.provisionGroup({ displayName: 'Pair', memberIds: [x.id, y.id] }, op);
      const bx = await keys.getUserKeyBundle(x.id, op);
      const by = await keys.getUserKeyBundle(y.id, op);
      const privY = await openUnderSymmetricKey(by.privateJwe, by.passwordKey);
      const jweForX = bx.groups.find((m) => m.groupId === g.id)!.memberJwe;
      await expect(openWithPrivateKey(jweForX, privY)).rejects.toThrow();
    });

    test('removing a member deletes their membership JWE', async () => {
      const u = await keys.provisionUser({ userName: 'leaver' }, op);
      const g = await keys.provisionGroup({ displayName: 'Temp', memberIds: [u.id] }, op);
      expect(await keys.removeMembers(g.id, [u.id], op)).toBe(1);
      expect((await keys.getUserKeyBundle(u.id, op)).groups).toEqual([]);
    });

    test('a group with an unknown member is not created at all', async () => {
      await expect(keys.provisionGroup({ displayName: 'Ghosts', memberIds: ['00000000-0000-4000-8000-000000000000'] }, op)).rejects.toBeInstanceOf(BadRequestError);
      await expect(keys.provisionGroup({ displayName: 'Ghosts' }, op)).resolves.toMatchObject({ displayName: 'Ghosts' });
    });

    test('the membership key is bound to its group', async () => {
      const g1 = await keys.provisionGroup({ displayName: 'One' }, op);
      const g2 = await keys.provisionGroup({ displayName: 'Two' }, op);
      const k1 = (await ctx.store.repos.groups.findKeys(g1.id))!;
      await ctx.store.repos.manager.update('GroupKeys', { groupId: g2.id }, { wrappedMembershipKey: k1.wrappedMembershipKey });
      await ctx.store.repos.manager.update('GroupKeyVersion', { groupId: g2.id, version: 1 }, { wrappedMembershipKey: k1.wrappedMembershipKey });
      const u = await keys.provisionUser({ userName: 'swap-victim' }, op);
      await expect(keys.addMembers(g2.id, [u.id], op)).rejects.toBeInstanceOf(UnwrapRefusedError);
      expect(await ctx.store.repos.memberships.forGroup(g2.id)).toEqual([]);
    });
  });

  describe('lifecycle', () => {
    test('a deactivated user gets no key operation until reactivated', async () => {
      const u = await keys.provisionUser({ userName: 'paused' }, op);
      await keys.setUserActive(u.id, false, op);
      await expect(keys.unwrapPasswordKey(u.id, op)).rejects.toBeInstanceOf(InactiveUserError);
      await expect(keys.getUserKeyBundle(u.id, op)).rejects.toBeInstanceOf(InactiveUserError);
      await expect(keys.wrapDataKey(u.id, randomBytes(32), op)).rejects.toBeInstanceOf(InactiveUserError);
      await keys.setUserActive(u.id, true, op);
      await expect(keys.unwrapPasswordKey(u.id, op)).resolves.toHaveLength(32);
    });

    test('a deleted user keeps their material until purged, but gets no key operation', async () => {
      const u = await keys.provisionUser({ userName: 'gone' }, op);
      await keys.softDeleteUser(u.id, op);
      await expect(keys.unwrapPasswordKey(u.id, op)).rejects.toBeInstanceOf(NotFoundError);
      expect(await ctx.store.repos.users.findKeys(u.id)).not.toBeNull();
      await keys.purgeUser(u.id, op);
      expect(await ctx.store.repos.users.findKeys(u.id)).toBeNull();
    });

    test('the key bundle zeroes nothing it returns but the service never keeps a copy', async () => {
      const u = await keys.provisionUser({ userName: 'bundle' }, op);
      const b1 = await keys.getUserKeyBundle(u.id, op);
      const copy = Buffer.from(b1.passwordKey);
      b1.passwordKey.fill(0); // the caller's duty; a later call must still work
      expect((await keys.getUserKeyBundle(u.id, op)).passwordKey.equals(copy)).toBe(true);
    });
  });
});

describe.each(['postgres', 'mariadb'] as const)('key service concurrency on %s', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  test('concurrent provisioning of the same user yields one user; the database enforces it', async () => {
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => ctx.keys.provisionUser({ userName: 'Same@Example.com' }, op)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').every((r) => (r as PromiseRejectedResult).reason instanceof ConflictError)).toBe(true);
    expect(await ctx.store.repos.users.count()).toBe(1);
  });
});
