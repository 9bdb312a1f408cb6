import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { compactDecrypt, importJWK } from 'jose';
import { testDatabaseNames } from '../support/databases';
import { auditOf, createAuthFixture, signInForToken, type AuthFixture } from '../support/auth-fixture';

/**
 * The key API with real sign-ins: a user gets exactly their own keys back, unwrapped by the KMS
 * (local adapter), and nothing of anyone else's — refused cryptographically, audited.
 */
describe.each(testDatabaseNames())('key API on %s', (kind) => {
  let f: AuthFixture;
  let alice: { id: string; wrappedPasswordKey: string };
  let bob: { id: string; wrappedPasswordKey: string };
  let aliceToken: string;
  let bobToken: string;

  beforeAll(async () => {
    f = await createAuthFixture(kind);
    const a = await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' });
    const b = await f.keys.provisionUser({ userName: 'bob@example.com' }, { actor: 'test' });
    alice = { id: a.id, wrappedPasswordKey: a.keys.wrappedPasswordKey };
    bob = { id: b.id, wrappedPasswordKey: b.keys.wrappedPasswordKey };
    await f.keys.provisionGroup({ displayName: 'Finance', memberIds: [a.id] }, { actor: 'test' });
    aliceToken = await signInForToken(f, { nameId: 'alice@example.com' });
    bobToken = await signInForToken(f, { nameId: 'bob@example.com' });
  });
  afterAll(async () => {
    await f?.cleanupAll();
  });

  const api = (method: 'get' | 'post', path: string, token: string) => request(f.app)[method](path).set('Authorization', `Bearer ${token}`);

  test('GET /api/keys/me: own bundle with the password key unwrapped by the KMS; it opens the private key JWE', async () => {
    const res = await api('get', '/api/keys/me', aliceToken);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toMatchObject({ userId: alice.id, wrappedPasswordKey: alice.wrappedPasswordKey, keyAlg: expect.any(String) });
    const pk = Buffer.from(res.body.passwordKey, 'base64url');
    expect(pk).toHaveLength(32);
    const direct = await f.keys.unwrapPasswordKey(alice.id, { actor: 'test' });
    expect(pk.equals(direct)).toBe(true);
    // The private key JWE opens with the password key (standard JOSE, dir + A256GCM).
    const { plaintext } = await compactDecrypt(res.body.privateJwe, pk);
    const privateJwk = JSON.parse(Buffer.from(plaintext).toString('utf8'));
    expect(privateJwk.d).toBeDefined();
    await expect(importJWK(privateJwk)).resolves.toBeDefined();
    expect(res.body.groups).toHaveLength(1);
    expect(res.body.groups[0]).toMatchObject({ displayName: 'Finance', memberJwe: expect.any(String), groupPrivateJwe: expect.any(String) });
    const ev = (await auditOf(f, 'key-bundle.get'))[0];
    expect(ev).toMatchObject({ outcome: 'success', actor: `user:${alice.id}`, targetId: alice.id });
  });

  test('unwrap of a client-brought blob: own blob opens; user B with user A\'s blob is refused by the KMS', async () => {
    const own = await api('post', '/api/keys/password-key/unwrap', aliceToken).send({ wrappedPasswordKey: alice.wrappedPasswordKey });
    expect(own.status).toBe(200);
    expect(own.headers['cache-control']).toBe('no-store');
    expect(Buffer.from(own.body.passwordKey, 'base64url')).toHaveLength(32);

    const stolen = await api('post', '/api/keys/password-key/unwrap', bobToken).send({ wrappedPasswordKey: alice.wrappedPasswordKey });
    expect(stolen.status).toBe(403);
    expect(stolen.body).toMatchObject({ code: 'unwrap_refused' });
    expect(stolen.body.passwordKey).toBeUndefined();
    const ev = (await auditOf(f, 'password-key.unwrap'))[0];
    expect(ev).toMatchObject({ outcome: 'refused', actor: `user:${bob.id}`, targetId: bob.id });

    const malformed = await api('post', '/api/keys/password-key/unwrap', bobToken).send({ wrappedPasswordKey: 'not-an-envelope' });
    expect(malformed.status).toBe(400);
    const extra = await api('post', '/api/keys/password-key/unwrap', bobToken).send({ wrappedPasswordKey: alice.wrappedPasswordKey, userId: alice.id });
    expect(extra.status).toBe(400);
  });

  test('a blob naming a KEK of the client\'s choosing is refused before any KMS is contacted (no SSRF, no credential leak)', async () => {
    const [prefix, , version, ct] = alice.wrappedPasswordKey.split('.');
    const evilKek = Buffer.from('vault-transit://127.0.0.1:9/transit/keys/steal').toString('base64url');
    const forged = [prefix, evilKek, version, ct].join('.');
    const r = await api('post', '/api/keys/password-key/unwrap', aliceToken).send({ wrappedPasswordKey: forged });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ code: 'unknown_kek' });
    const d = await api('post', '/api/keys/data-keys/unwrap', aliceToken).send({ wrappedKey: forged });
    expect(d.status).toBe(400);
    // Same scheme as the configured KEK, another key name: still never handed to the adapter.
    const otherLocal = [prefix, Buffer.from('local://attacker-chosen').toString('base64url'), version, ct].join('.');
    const l = await api('post', '/api/keys/password-key/unwrap', aliceToken).send({ wrappedPasswordKey: otherLocal });
    expect(l.status).toBe(400);
    expect(l.body).toMatchObject({ code: 'unknown_kek' });
    expect((await auditOf(f, 'password-key.unwrap'))[0]).toMatchObject({ outcome: 'refused', actor: `user:${alice.id}` });
  });

  test('data keys: wrap and unwrap bound to the caller (and label); others cannot open them', async () => {
    const key = randomBytes(32);
    const wrapped = await api('post', '/api/keys/data-keys/wrap', aliceToken).send({ key: key.toString('base64url'), label: 'doc-42' });
    expect(wrapped.status).toBe(200);
    expect(wrapped.body.wrappedKey).toMatch(/^cs1\./);
    const back = await api('post', '/api/keys/data-keys/unwrap', aliceToken).send({ wrappedKey: wrapped.body.wrappedKey, label: 'doc-42' });
    expect(back.status).toBe(200);
    expect(Buffer.from(back.body.key, 'base64url').equals(key)).toBe(true);
    expect(back.headers['cache-control']).toBe('no-store');

    const otherLabel = await api('post', '/api/keys/data-keys/unwrap', aliceToken).send({ wrappedKey: wrapped.body.wrappedKey, label: 'doc-43' });
    expect(otherLabel.status).toBe(403);
    const otherUser = await api('post', '/api/keys/data-keys/unwrap', bobToken).send({ wrappedKey: wrapped.body.wrappedKey, label: 'doc-42' });
    expect(otherUser.status).toBe(403);
    expect(otherUser.body.code).toBe('unwrap_refused');
    expect((await auditOf(f, 'data-key.unwrap'))[0]).toMatchObject({ outcome: 'refused', actor: `user:${bob.id}` });

    const tooShort = await api('post', '/api/keys/data-keys/wrap', aliceToken).send({ key: randomBytes(8).toString('base64url') });
    expect(tooShort.status).toBe(400);
    const notB64 = await api('post', '/api/keys/data-keys/wrap', aliceToken).send({ key: '***' });
    expect(notB64.status).toBe(400);
    expect(notB64.body.code).toBe('invalid_input');
  });

  test('a user deactivated after sign-in is refused with a valid token, and audited', async () => {
    const carol = await f.keys.provisionUser({ userName: 'carol@example.com' }, { actor: 'test' });
    const token = await signInForToken(f, { nameId: 'carol@example.com' });
    expect((await api('get', '/api/keys/me', token)).status).toBe(200);
    await f.keys.setUserActive(carol.id, false, { actor: 'scim' });
    for (const [method, path, body] of [
      ['get', '/api/keys/me', undefined],
      ['post', '/api/keys/password-key/unwrap', { wrappedPasswordKey: carol.keys.wrappedPasswordKey }],
      ['post', '/api/keys/data-keys/wrap', { key: randomBytes(32).toString('base64url') }],
    ] as const) {
      const req = api(method, path, token);
      const res = await (body ? req.send(body) : req);
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('user_inactive');
    }
    expect((await auditOf(f, 'key-bundle.get'))[0]).toMatchObject({ outcome: 'refused', targetId: carol.id });
  });

  test('no plaintext key in the audit trail', async () => {
    const res = await api('get', '/api/keys/me', aliceToken);
    const rows: { detail: string | null }[] = await f.store.dataSource.query('SELECT detail FROM audit_events');
    const all = rows.map((r) => r.detail ?? '').join('\n');
    expect(all).not.toContain(res.body.passwordKey);
  });
});

describe('refusals before the key service are audited too', () => {
  let f: AuthFixture;
  let token: string;
  beforeAll(async () => {
    f = await createAuthFixture('sqlite');
    await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' });
    token = await signInForToken(f, { nameId: 'alice@example.com' });
  });
  afterAll(async () => {
    await f?.cleanupAll();
  });

  test('invalid body, oversized body, non-form token request, oversized SAML post', async () => {
    const bad = await request(f.app).post('/api/keys/data-keys/wrap').set('Authorization', `Bearer ${token}`).send({ key: '***' });
    expect(bad.status).toBe(400);
    expect((await auditOf(f, 'key-api.request'))[0]).toMatchObject({ outcome: 'refused' });
    const big = await request(f.app).post('/api/keys/password-key/unwrap').set('Authorization', `Bearer ${token}`).send({ wrappedPasswordKey: 'x'.repeat(300 * 1024) });
    expect(big.status).toBe(413);
    expect(JSON.parse((await auditOf(f, 'key-api.request'))[0].detail!)).toMatchObject({ error: 'payload_too_large' });
    const json = await request(f.app).post('/oauth/token').send({ grant_type: 'authorization_code' });
    expect(json.status).toBe(400);
    expect(JSON.parse((await auditOf(f, 'oauth.token'))[0].detail!)).toMatchObject({ reason: 'not form-encoded' });
    const huge = await request(f.app).post('/auth/saml/acs').type('form').send({ SAMLResponse: 'A'.repeat(400 * 1024) });
    expect(huge.status).toBe(413);
    expect(JSON.parse((await auditOf(f, 'saml.login'))[0].detail!)).toMatchObject({ error: 'payload_too_large' });
  });
});
