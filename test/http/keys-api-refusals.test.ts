import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { testDatabaseNames } from '../support/databases';
import { auditOf, createAuthFixture, signInForToken, type AuthFixture } from '../support/auth-fixture';
import { duplicateMemberName } from '../../server/http/json-duplicates';
import { ownWrites } from '../../server/repositories/runner';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { TokenService } from '../../scim/tokens';

/**
 * docs/key-api.md promises that every call of the key API is written to the audit log. Each kind
 * of refusal is sent here and must leave exactly one new `refused` event naming the action and,
 * once the token is verified, the caller.
 */
describe.each(testDatabaseNames())('key API refusals are audited on %s', (kind) => {
  let f: AuthFixture;
  let alice: { id: string; wrappedPasswordKey: string };
  let carol: { id: string };
  let aliceToken: string;
  let carolToken: string;
  let bob: { id: string };
  let bobToken: string;

  beforeAll(async () => {
    f = await createAuthFixture(kind);
    const a = await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' });
    alice = { id: a.id, wrappedPasswordKey: a.keys.wrappedPasswordKey };
    carol = await f.keys.provisionUser({ userName: 'carol@example.com' }, { actor: 'test' });
    aliceToken = await signInForToken(f, { nameId: 'alice@example.com' });
    carolToken = await signInForToken(f, { nameId: 'carol@example.com' });
    bob = await f.keys.provisionUser({ userName: 'bob@example.com' }, { actor: 'test' });
    bobToken = await signInForToken(f, { nameId: 'bob@example.com' });
    await f.keys.setUserActive(carol.id, false, { actor: 'scim' });
  });
  afterAll(async () => {
    await f?.cleanupAll();
  });

  const refusals = async (action: string) => (await auditOf(f, action)).filter((e) => e.outcome === 'refused');

  /** Runs `send` and returns the one refused event of `action` it added. */
  async function oneRefusal(action: string, send: () => Promise<request.Response>, status: number) {
    const before = (await refusals(action)).length;
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    const after = await refusals(action);
    expect(after.length).toBe(before + 1);
    return { res, event: after[0], detail: JSON.parse(after[0].detail ?? '{}') as Record<string, string> };
  }

  const asAlice = (method: 'get' | 'post', path: string) => request(f.app)[method](path).set('Authorization', `Bearer ${aliceToken}`);
  const byAlice = () => ({ actor: `user:${alice.id}`, targetType: 'user', targetId: alice.id });

  test.each([
    ['15-byte', 15],
    ['65-byte', 65],
  ])('wrap of a %s data key → 400 invalid_input naming `key`, audited with the caller', async (_name, n) => {
    const key = randomBytes(n).toString('base64url');
    const { res, event, detail } = await oneRefusal('key-api.request', () => asAlice('post', '/api/keys/data-keys/wrap').send({ key }), 400);
    expect(res.body).toMatchObject({ code: 'invalid_input', errors: [{ path: 'key', message: expect.stringMatching(/16 to 64 bytes/) }] });
    expect(event).toMatchObject(byAlice());
    expect(detail).toMatchObject({ error: 'invalid_input', path: '/api/keys/data-keys/wrap' });
    expect(event.detail).not.toContain(key);
  });

  test('16- and 64-byte keys are accepted (the limits are inclusive)', async () => {
    for (const n of [16, 64]) {
      const res = await asAlice('post', '/api/keys/data-keys/wrap').send({ key: randomBytes(n).toString('base64url') });
      expect(res.status).toBe(200);
    }
  });

  test.each([
    ['plain', `{"key":"${randomBytes(32).toString('base64url')}","key":"${randomBytes(32).toString('base64url')}"}`],
    ['escaped name', `{"key":"${randomBytes(32).toString('base64url')}", "\\u006bey" : "${randomBytes(32).toString('base64url')}"}`],
    ['label', `{"key":"${randomBytes(32).toString('base64url')}","label":"a","label":"b"}`],
  ])('a duplicate member name (%s) → 400, audited, nothing wrapped', async (_name, body) => {
    const wrapsBefore = (await auditOf(f, 'data-key.wrap')).length;
    const { res, event } = await oneRefusal('key-api.request', () => asAlice('post', '/api/keys/data-keys/wrap').set('Content-Type', 'application/json').send(body), 400);
    expect(res.body).toMatchObject({ code: 'invalid_input', detail: expect.stringMatching(/appears more than once/) });
    expect(event).toMatchObject(byAlice());
    expect((await auditOf(f, 'data-key.wrap')).length).toBe(wrapsBefore);
  });

  test('schema violations: unknown field, not base64url, missing field', async () => {
    for (const body of [{ key: randomBytes(32).toString('base64url'), userId: 'x' }, { key: '***' }, {}]) {
      const { event } = await oneRefusal('key-api.request', () => asAlice('post', '/api/keys/data-keys/wrap').send(body), 400);
      expect(event).toMatchObject(byAlice());
    }
  });

  test('a body that is not JSON, and one over the size limit, are audited with the caller', async () => {
    const notJson = await oneRefusal('key-api.request', () => asAlice('post', '/api/keys/data-keys/wrap').set('Content-Type', 'application/json').send('{"key": '), 400);
    expect(notJson.event).toMatchObject(byAlice());
    expect(notJson.detail).toMatchObject({ error: 'invalid_request' });
    const big = await oneRefusal('key-api.request', () => asAlice('post', '/api/keys/password-key/unwrap').send({ wrappedPasswordKey: 'x'.repeat(300 * 1024) }), 413);
    expect(big.event).toMatchObject(byAlice());
    expect(big.detail).toMatchObject({ error: 'payload_too_large' });
  });

  test('an unknown key API route or method → 404, audited', async () => {
    const nope = await oneRefusal('key-api.request', () => asAlice('get', '/api/keys/everyone'), 404);
    expect(nope.event).toMatchObject(byAlice());
    expect(nope.detail).toMatchObject({ error: 'not_found', path: '/everyone' });
    const method = await oneRefusal('key-api.request', () => asAlice('get', '/api/keys/data-keys/wrap'), 404);
    expect(method.detail).toMatchObject({ error: 'not_found' });
  });

  test('missing, malformed and foreign tokens → 401, audited as token.verify', async () => {
    const none = await oneRefusal('token.verify', () => request(f.app).get('/api/keys/me'), 401);
    expect(none.event).toMatchObject({ actor: 'anonymous' });
    expect(none.detail).toMatchObject({ error: 'invalid_token' });
    await oneRefusal('token.verify', () => request(f.app).get('/api/keys/me').set('Authorization', 'Bearer not.a.jwt'), 401);
    await oneRefusal('token.verify', () => request(f.app).get('/api/keys/me').set('Authorization', `Basic ${Buffer.from('a:b').toString('base64')}`), 401);
  });

  test.each(['bearer', 'BEARER', 'bEaReR'])('the scheme is case-insensitive (RFC 7235): "%s <token>" is accepted by the key API and SCIM', async (scheme) => {
    const res = await request(f.app).get('/api/keys/me').set('Authorization', `${scheme} ${aliceToken}`);
    expect(res.status).toBe(200);
    expect(res.body.userId).toBe(alice.id);
    const tokens = new TokenService(ownWrites(f.store, (m) => new ApiTokenRepository(m)));
    const { token } = await tokens.create({ name: `idp ${scheme}`, scope: 'scim' });
    const scim = await request(f.app).get('/scim/v2/Users').set('Authorization', `${scheme} ${token}`);
    expect(scim.status).toBe(200);
  });

  test('a scheme other than Bearer is still refused, and audited', async () => {
    await oneRefusal('token.verify', () => request(f.app).get('/api/keys/me').set('Authorization', `Bearerx ${aliceToken}`), 401);
    await oneRefusal('token.verify', () => request(f.app).get('/api/keys/me').set('Authorization', `DPoP ${aliceToken}`), 401);
  });

  test('refusals by the key service: malformed envelope, unknown KEK, another user\'s blob, deactivated user', async () => {
    const malformed = await oneRefusal('password-key.unwrap', () => asAlice('post', '/api/keys/password-key/unwrap').send({ wrappedPasswordKey: 'not-an-envelope' }), 400);
    expect(malformed.event).toMatchObject(byAlice());
    const [prefix, , version, ct] = alice.wrappedPasswordKey.split('.');
    const forged = [prefix, Buffer.from('local://attacker-chosen').toString('base64url'), version, ct].join('.');
    const unknownKek = await oneRefusal('data-key.unwrap', () => asAlice('post', '/api/keys/data-keys/unwrap').send({ wrappedKey: forged }), 400);
    expect(unknownKek.detail).toMatchObject({ error: 'unknown_kek' });
    const stolen = await oneRefusal('password-key.unwrap', () => request(f.app).post('/api/keys/password-key/unwrap').set('Authorization', `Bearer ${bobToken}`).send({ wrappedPasswordKey: alice.wrappedPasswordKey }), 403);
    expect(stolen.event).toMatchObject({ actor: `user:${bob.id}`, targetId: bob.id });
    expect(stolen.detail).toMatchObject({ error: 'unwrap_refused' });
    const inactive = await oneRefusal('data-key.wrap', () => request(f.app).post('/api/keys/data-keys/wrap').set('Authorization', `Bearer ${carolToken}`).send({ key: randomBytes(32).toString('base64url') }), 403);
    expect(inactive.event).toMatchObject({ actor: `user:${carol.id}`, targetId: carol.id });
    expect(inactive.detail).toMatchObject({ error: 'user_inactive' });
  });
});

describe('duplicateMemberName', () => {
  test.each([
    ['{"a":1,"b":2}', undefined],
    ['{"a":1,"a":2}', 'a'],
    ['{"a":{"b":1},"b":2}', undefined],
    ['{"a":{"b":1,"b":2}}', 'b'],
    ['[{"a":1},{"a":1}]', undefined],
    ['{"a":"{\\"a\\":1}","b":"x"}', undefined],
    ['{"a":["a","a"],"b":"a:"}', undefined],
    ['{"a\\"":1,"a\\u0022":2}', 'a"'],
    ['{"k" \n :1, "k"\t:2}', 'k'],
  ])('%s → %s', (text, expected) => {
    expect(() => JSON.parse(text)).not.toThrow();
    expect(duplicateMemberName(text)).toBe(expected);
  });
});
