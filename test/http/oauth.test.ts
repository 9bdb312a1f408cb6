import request from 'supertest';
import { decodeProtectedHeader, SignJWT, UnsecuredJWT, generateKeyPair, createLocalJWKSet, jwtVerify } from 'jose';
import { testDatabaseNames } from '../support/databases';
import { auditOf, createAuthFixture, DESKTOP, newVerifier, redeem, signInForCode, signInForToken, WEB, type AuthFixture } from '../support/auth-fixture';
import { s256Challenge } from '../../server/auth/pkce';
import { createAuthServices } from '../../server/auth';
import { createApp } from '../../server/http/app';

/**
 * Authorization code + PKCE and access tokens: redirect URI rules (no open redirect), one-time
 * short-lived codes, PKCE S256, JWTs verifiable with the published JWKS, signing-key rotation, and
 * the token attacks. Every refusal: a clear 4xx and an audit event.
 */
describe.each(testDatabaseNames())('OAuth code flow on %s', (kind) => {
  let f: AuthFixture;
  const alice = { nameId: 'alice@example.com' };
  let aliceId: string;
  const p = (i: number) => (kind === 'postgres' ? `$${i}` : '?');

  beforeAll(async () => {
    f = await createAuthFixture(kind);
    aliceId = (await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' })).id;
  });
  afterAll(async () => {
    await f?.cleanupAll();
  });

  const authorize = (q: Record<string, string>) =>
    request(f.app)
      .get('/oauth/authorize')
      .query({ response_type: 'code', client_id: WEB.clientId, redirect_uri: WEB.redirectUri, code_challenge: s256Challenge(newVerifier()), code_challenge_method: 'S256', state: 'xyz', ...q });

  async function refusedCount(action: string): Promise<number> {
    return (await auditOf(f, action)).filter((e) => e.outcome === 'refused').length;
  }

  // ---- authorize ---------------------------------------------------------------------------

  test('unknown client or unregistered redirect URI: a page, never a redirect (no open redirector)', async () => {
    const before = await refusedCount('oauth.authorize');
    const queries: Record<string, string>[] = [
      { client_id: 'nope' },
      { redirect_uri: 'https://evil.example/callback' },
      { redirect_uri: 'https://app.example.com/callback/../evil' },
      { redirect_uri: 'https://app.example.com/callback?next=https://evil.example' },
      { redirect_uri: 'https://app.example.com.evil.example/callback' },
      { client_id: DESKTOP.clientId, redirect_uri: 'http://evil.example:8080/callback' },
      { client_id: WEB.clientId, redirect_uri: 'http://127.0.0.1:9999/callback' },
    ];
    for (const q of queries) {
      const res = await authorize(q);
      expect(res.status).toBe(400);
      expect(res.headers.location).toBeUndefined();
      expect(res.headers['content-type']).toMatch(/text\/html/);
      expect(res.text).toMatch(/Sign-in refused/);
    }
    expect(await refusedCount('oauth.authorize')).toBe(before + 7);
  });

  test('after the redirect URI is trusted, bad parameters go back to the client as errors', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ response_type: 'token' }, 'unsupported_response_type'],
      [{ code_challenge_method: 'plain' }, 'invalid_request'],
      [{ code_challenge: 'short' }, 'invalid_request'],
    ];
    for (const [q, error] of cases) {
      const res = await authorize(q);
      expect(res.status).toBe(303);
      const loc = new URL(res.headers.location);
      expect(`${loc.origin}${loc.pathname}`).toBe(WEB.redirectUri);
      expect(loc.searchParams.get('error')).toBe(error);
      expect(loc.searchParams.get('state')).toBe('xyz');
      expect(loc.searchParams.get('code')).toBeNull();
    }
    const noChallenge = await request(f.app).get('/oauth/authorize').query({ response_type: 'code', client_id: WEB.clientId, redirect_uri: WEB.redirectUri });
    expect(new URL(noChallenge.headers.location).searchParams.get('error')).toBe('invalid_request');
  });

  // ---- token -------------------------------------------------------------------------------

  test('code → token; the token is a short-lived ES256 JWT verifiable with the published JWKS', async () => {
    const { code, started } = await signInForCode(f, alice);
    const res = await redeem(f, { grant_type: 'authorization_code', code, redirect_uri: started.redirectUri, client_id: WEB.clientId, code_verifier: started.verifier });
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toMatchObject({ token_type: 'Bearer', expires_in: 300 });
    const token = res.body.access_token as string;
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });

    const jwks = await request(f.app).get('/.well-known/jwks.json');
    expect(jwks.status).toBe(200);
    expect(jwks.headers['content-type']).toMatch(/jwk-set\+json/);
    expect(jwks.text).not.toMatch(/"d"/);
    const { payload } = await jwtVerify(token, createLocalJWKSet(JSON.parse(jwks.text)), { issuer: 'http://127.0.0.1:8080', audience: 'http://127.0.0.1:8080/api' });
    expect(payload).toMatchObject({ sub: aliceId, client_id: 'web' });
    expect(payload.exp! - payload.iat!).toBe(300);
    expect((await auditOf(f, 'oauth.token'))[0]).toMatchObject({ outcome: 'success', targetId: aliceId });
  });

  test('the signing key is stored wrapped by the KMS, never in clear', async () => {
    const rows = await f.store.dataSource.query('SELECT kid, public_jwk, wrapped_private_jwk, kek_uri FROM signing_keys');
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) {
      expect(r.wrapped_private_jwk).toMatch(/^cs1\./);
      expect(r.wrapped_private_jwk).not.toMatch(/"d"/);
      expect(JSON.parse(r.public_jwk).d).toBeUndefined();
    }
  });

  test('a code is one-time: reuse is refused', async () => {
    const { code, started } = await signInForCode(f, alice);
    const fields = { grant_type: 'authorization_code', code, redirect_uri: started.redirectUri, client_id: WEB.clientId, code_verifier: started.verifier };
    expect((await redeem(f, fields)).status).toBe(200);
    const before = await refusedCount('oauth.token');
    const again = await redeem(f, fields);
    expect(again.status).toBe(400);
    expect(again.body).toMatchObject({ error: 'invalid_grant', error_description: 'the authorization code was already used' });
    expect(await refusedCount('oauth.token')).toBe(before + 1);
  });

  test('a wrong PKCE verifier is refused, and burns the code', async () => {
    const { code, started } = await signInForCode(f, alice);
    const fields = { grant_type: 'authorization_code', code, redirect_uri: started.redirectUri, client_id: WEB.clientId };
    const wrong = await redeem(f, { ...fields, code_verifier: newVerifier() });
    expect(wrong.status).toBe(400);
    expect(wrong.body).toMatchObject({ error: 'invalid_grant', error_description: expect.stringMatching(/code_verifier/) });
    const right = await redeem(f, { ...fields, code_verifier: started.verifier });
    expect(right.body.error).toBe('invalid_grant');
    const missing = await signInForCode(f, alice);
    expect((await redeem(f, { ...fields, code: missing.code })).body).toMatchObject({ error: 'invalid_request', error_description: expect.stringMatching(/code_verifier/) });
  });

  test('an expired code is refused', async () => {
    const { code, started } = await signInForCode(f, alice);
    await f.store.dataSource.query(`UPDATE auth_codes SET expires_at = ${p(1)} WHERE consumed_at IS NULL`, ['2000-01-01T00:00:00.000Z']);
    const res = await redeem(f, { grant_type: 'authorization_code', code, redirect_uri: started.redirectUri, client_id: WEB.clientId, code_verifier: started.verifier });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_grant', error_description: 'the authorization code has expired' });
  });

  test('a code bound to another client or redirect URI is refused', async () => {
    const a = await signInForCode(f, alice);
    const other = await redeem(f, { grant_type: 'authorization_code', code: a.code, redirect_uri: a.started.redirectUri, client_id: DESKTOP.clientId, code_verifier: a.started.verifier });
    expect(other.body).toMatchObject({ error: 'invalid_grant' });
    const b = await signInForCode(f, alice);
    const redirect = await redeem(f, { grant_type: 'authorization_code', code: b.code, redirect_uri: 'https://app.example.com/other', client_id: WEB.clientId, code_verifier: b.started.verifier });
    expect(redirect.body).toMatchObject({ error: 'invalid_grant', error_description: expect.stringMatching(/redirect_uri/) });
  });

  test('other malformed token requests', async () => {
    expect((await redeem(f, { grant_type: 'password', client_id: 'web' })).body.error).toBe('unsupported_grant_type');
    const unknown = await redeem(f, { grant_type: 'authorization_code', client_id: 'nope', code: 'x', redirect_uri: 'x', code_verifier: 'x' });
    expect(unknown.status).toBe(401);
    expect(unknown.body.error).toBe('invalid_client');
    expect((await redeem(f, { grant_type: 'authorization_code', client_id: 'web', code: 'x'.repeat(43), redirect_uri: WEB.redirectUri, code_verifier: newVerifier() })).body.error).toBe('invalid_grant');
    const json = await request(f.app).post('/oauth/token').send({ grant_type: 'authorization_code' });
    expect(json.status).toBe(400);
  });

  test('a user deactivated between sign-in and redemption gets no token', async () => {
    const u = await f.keys.provisionUser({ userName: 'frank@example.com' }, { actor: 'test' });
    const { code, started } = await signInForCode(f, { nameId: 'frank@example.com' });
    await f.keys.setUserActive(u.id, false, { actor: 'test' });
    const res = await redeem(f, { grant_type: 'authorization_code', code, redirect_uri: started.redirectUri, client_id: WEB.clientId, code_verifier: started.verifier });
    expect(res.body).toMatchObject({ error: 'invalid_grant', error_description: 'the user is no longer active' });
  });

  // ---- tokens on the key API ---------------------------------------------------------------

  test('token attacks on the key API: alg none, wrong key, expired, wrong audience, garbage', async () => {
    const good = await signInForToken(f, alice);
    const { kid } = decodeProtectedHeader(good);
    const claims = { client_id: 'web' };
    const base = (j: SignJWT) => j.setSubject(aliceId).setIssuer('http://127.0.0.1:8080').setIssuedAt().setJti('attack');
    const none = new UnsecuredJWT(claims).setSubject(aliceId).setIssuer('http://127.0.0.1:8080').setAudience('http://127.0.0.1:8080/api').setIssuedAt().setExpirationTime('5m').encode();
    const noneWithKid = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid })).toString('base64url')}.${none.split('.')[1]}.`;
    const attacker = await generateKeyPair('ES256');
    const wrongKey = await base(new SignJWT(claims)).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid }).setAudience('http://127.0.0.1:8080/api').setExpirationTime('5m').sign(attacker.privateKey);

    // Expired and wrong-audience tokens signed with our real key (taken from the KMS as the server does).
    const key = await createAuthServices(f).signingKeys.signingKey({ actor: 'test' });
    const expired = await base(new SignJWT(claims)).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid }).setAudience('http://127.0.0.1:8080/api').setIssuedAt(Math.floor(Date.now() / 1000) - 3600).setExpirationTime(Math.floor(Date.now() / 1000) - 1800).sign(key.privateKey);
    const wrongAud = await base(new SignJWT(claims)).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid }).setAudience('https://cloud.example.com').setExpirationTime('5m').sign(key.privateKey);
    const control = await base(new SignJWT(claims)).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid }).setAudience('http://127.0.0.1:8080/api').setExpirationTime('5m').sign(key.privateKey);
    expect((await request(f.app).get('/api/keys/me').set('Authorization', `Bearer ${control}`)).status).toBe(200);

    const cases: [string, RegExp][] = [
      [none, /algorithm|malformed/],
      [noneWithKid, /algorithm/],
      [wrongKey, /signature does not verify/],
      [expired, /expired/],
      [wrongAud, /audience/],
      ['a.b.c', /malformed/],
    ];
    for (const [token, message] of cases) {
      const before = await refusedCount('token.verify');
      const res = await request(f.app).get('/api/keys/me').set('Authorization', `Bearer ${token}`);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer .*error="invalid_token"/);
      expect(res.headers['content-type']).toMatch(/problem\+json/);
      expect(res.body).toMatchObject({ code: 'invalid_token', detail: expect.stringMatching(message) });
      expect(res.body.passwordKey).toBeUndefined();
      expect(await refusedCount('token.verify')).toBe(before + 1);
    }
    const missing = await request(f.app).get('/api/keys/me');
    expect(missing.status).toBe(401);
    expect(missing.body.detail).toMatch(/access token is required/);
  });

  test('signing-key rotation: new tokens use the new key, old tokens verify until they expire, JWKS lists both', async () => {
    const before = await signInForToken(f, alice);
    const oldKid = decodeProtectedHeader(before).kid!;
    const services = createAuthServices(f);
    const newKid = await services.signingKeys.rotate({ actor: 'test' });
    expect(newKid).not.toBe(oldKid);
    expect((await auditOf(f, 'token-signing-key.rotate'))[0]).toMatchObject({ outcome: 'success', targetId: newKid });

    // A fresh app (another replica) sees the rotation at once; the running one within its cache window.
    const replica = createApp(f);
    const after = await signInForToken({ ...f, app: replica }, alice);
    expect(decodeProtectedHeader(after).kid).toBe(newKid);
    const jwks = (await request(replica).get('/.well-known/jwks.json')).body as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([oldKid, newKid]));
    expect((await request(replica).get('/api/keys/me').set('Authorization', `Bearer ${before}`)).status).toBe(200);
    expect((await request(replica).get('/api/keys/me').set('Authorization', `Bearer ${after}`)).status).toBe(200);

    // Once retired longer than a token lifetime, the old key leaves the JWKS and its tokens stop working.
    await f.store.dataSource.query(`UPDATE signing_keys SET retired_at = ${p(1)} WHERE kid = ${p(2)}`, ['2000-01-01T00:00:00.000Z', oldKid]);
    const replica2 = createApp(f);
    const jwks2 = (await request(replica2).get('/.well-known/jwks.json')).body as { keys: { kid: string }[] };
    expect(jwks2.keys.map((k) => k.kid)).not.toContain(oldKid);
    expect((await request(replica2).get('/api/keys/me').set('Authorization', `Bearer ${before}`)).status).toBe(401);
  });

  test('authorization server metadata', async () => {
    const res = await request(f.app).get('/.well-known/oauth-authorization-server');
    expect(res.body).toMatchObject({ issuer: 'http://127.0.0.1:8080', code_challenge_methods_supported: ['S256'], token_endpoint: 'http://127.0.0.1:8080/oauth/token' });
  });
});
