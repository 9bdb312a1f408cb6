import { createHmac, createPublicKey, randomBytes, randomUUID } from 'node:crypto';
import pino from 'pino';
import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { listen, type Listening } from '../support/http-server';
import { keyConnectorClient } from '../support/key-connector-client';
import { newSigningKey, startOidcIssuer, type OidcIssuer } from '../emulators/oidc-issuer';
import { boot } from '../../server/boot';
import { createApp } from '../../server/http/app';
import { KeyConnectorUserKeyEntity } from '../../entities';

/**
 * The Key Connector API driven exactly as the Bitwarden clients call it
 * (bitwarden/clients libs/common/src/services/api.service.ts, getMasterKeyFromKeyConnector /
 * postUserKeyToKeyConnector / getKeyConnectorAlive): `fetch(<url> + "/user-keys")` with
 * `Accept: application/json`, `Authorization: Bearer <token>` and, for writes,
 * `Content-Type: application/json; charset=utf-8` and `JSON.stringify({ key })`. The contract is
 * bitwarden/key-connector src/KeyConnector/Controllers/UserKeysController.cs: GET 200 {"key"} or
 * 404; POST 200 or 400 when a key exists; PUT 200 creates or replaces.
 */
const WEB_VAULT = 'https://vault.example.com';
const b64 = (n = 32) => randomBytes(n).toString('base64');
const guid = () => randomUUID();

describe.each(testDatabaseNames())('Key Connector API on %s', (kind) => {
  let idp: OidcIssuer;
  let ctx: TestContext;
  let server: Listening;
  let url: string;

  beforeAll(async () => {
    idp = await startOidcIssuer();
    ctx = await createTestContext(kind, { CS_KEY_CONNECTOR_ISSUER: idp.issuer, CS_KEY_CONNECTOR_WEB_VAULT_URL: `${WEB_VAULT}/` });
    server = await listen(ctx.app);
    url = `${server.url}/key-connector`;
  });
  afterAll(async () => {
    await server?.close();
    await ctx?.cleanup();
    await idp?.close();
  });

  // The clients' exact requests (api.service.ts).
  const { getKey, sendKey, storeFirstKey } = keyConnectorClient(() => url);
  const row = (sub: string) => ctx.store.dataSource.manager.findOneBy(KeyConnectorUserKeyEntity, { sub });
  const events = (sub?: string) => ctx.store.repos.audit.recent(500, sub ? { targetId: sub } : {});

  test('GET 404 → POST 200 (empty) → GET 200 {"key"} → POST again 400 (not overwritten) → PUT replaces', async () => {
    const sub = guid();
    const token = await idp.token(sub);
    const key = await storeFirstKey(token);

    const again = await sendKey('POST', token, JSON.stringify({ key: b64() }));
    expect(again.status).toBe(400);
    expect(await (await getKey(token)).json()).toEqual({ key });

    // The Xamarin mobile client's body is PascalCase (bitwarden/android src/Core/Models/Request/KeyConnectorUserKeyRequest.cs).
    const replacement = b64();
    const put = await sendKey('PUT', token, JSON.stringify({ Key: replacement }));
    expect(put.status).toBe(200);
    expect(await (await getKey(token)).json()).toEqual({ key: replacement });

    // Stored wrapped only, with its times; the audit trail names the subject, never the key.
    const stored = (await row(sub))!;
    expect(stored.wrappedKey).not.toContain(replacement);
    expect(Buffer.from(stored.wrappedKey).includes(Buffer.from(replacement, 'base64'))).toBe(false);
    expect(stored.revisedAt).not.toBeNull();
    expect(stored.lastAccessAt).not.toBeNull();
    const trail = await events(sub);
    expect(trail.map((e) => `${e.action}:${e.outcome}`)).toEqual(
      expect.arrayContaining(['key-connector.create:success', 'key-connector.get:success', 'key-connector.create:refused', 'key-connector.replace:success', 'key-connector.get:refused']),
    );
    expect(trail.every((e) => e.actor === `key-connector:${sub}`)).toBe(true);
    expect(JSON.stringify(trail)).not.toContain(key);
    expect(JSON.stringify(trail)).not.toContain(replacement);
  });

  test('PUT creates when no key is stored; an upper-case sub is the same user', async () => {
    const sub = guid();
    const key = b64();
    expect((await sendKey('PUT', await idp.token(sub.toUpperCase()), JSON.stringify({ key }))).status).toBe(200);
    expect(await (await getKey(await idp.token(sub))).json()).toEqual({ key });
    expect((await events(sub)).some((e) => e.action === 'key-connector.create' && e.outcome === 'success')).toBe(true);
  });

  test('/alive and /now: 200 with the current UTC time as a JSON string, no token needed', async () => {
    for (const path of ['/alive', '/now']) {
      const before = Date.now();
      const r = await fetch(`${url}${path}`, { cache: 'no-store', method: 'GET', headers: { Accept: 'application/json', 'Content-Type': 'application/json; charset=utf-8' } });
      expect(r.status).toBe(200);
      const t = await r.json();
      expect(typeof t).toBe('string');
      expect(t).toMatch(/Z$/);
      expect(Date.parse(t)).toBeGreaterThanOrEqual(before - 1000);
    }
  });

  test('a row copied to another user does not open for them: refused by the KMS binding, audited', async () => {
    const alice = guid();
    const bob = guid();
    const aliceKey = b64();
    expect((await sendKey('POST', await idp.token(alice), JSON.stringify({ key: aliceKey }))).status).toBe(200);
    expect((await sendKey('POST', await idp.token(bob), JSON.stringify({ key: b64() }))).status).toBe(200);
    // What Key Connector cannot detect: swapping rows between users in the database.
    const stolen = (await row(alice))!.wrappedKey;
    await ctx.store.dataSource.manager.update(KeyConnectorUserKeyEntity, { sub: bob }, { wrappedKey: stolen });
    const r = await getKey(await idp.token(bob));
    expect(r.status).toBe(403);
    const text = await r.text();
    expect(text).not.toContain(aliceKey);
    expect(JSON.parse(text)).toMatchObject({ code: 'unwrap_refused' });
    expect((await events(bob)).some((e) => e.action === 'key-connector.get' && e.outcome === 'refused')).toBe(true);
  });

  describe('bad input: each a 4xx, nothing stored, audited', () => {
    const hs256WithPublicKey = async (sub: string) => {
      // The classic confusion attack: HMAC keyed with the issuer's public key (as PEM).
      const pem = createPublicKey({ key: idp.keys[0].publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const now = Math.floor(Date.now() / 1000);
      const input = `${enc({ alg: 'HS256', typ: 'JWT', kid: idp.keys[0].kid })}.${enc({ iss: idp.issuer, sub, exp: now + 600, scope: ['api'], amr: ['Application'] })}`;
      return `${input}.${createHmac('sha256', pem).update(input).digest('base64url')}`;
    };
    const algNone = (sub: string) => {
      const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      return `${enc({ alg: 'none', typ: 'JWT' })}.${enc({ iss: idp.issuer, sub, exp: Math.floor(Date.now() / 1000) + 600, scope: ['api'], amr: ['Application'] })}.`;
    };
    const now = () => Math.floor(Date.now() / 1000);
    const cases: [string, (sub: string) => Promise<{ token: string; body: string }>, number, string][] = [
      ['malformed JSON', async (s) => ({ token: await idp.token(s), body: '{"key": "abc' }), 400, 'invalid_request'],
      ['a key that is not base64', async (s) => ({ token: await idp.token(s), body: JSON.stringify({ key: 'not base64!' }) }), 400, 'invalid_input'],
      ['a key over 1 KiB', async (s) => ({ token: await idp.token(s), body: JSON.stringify({ key: b64(1025) }) }), 400, 'invalid_input'],
      ['no key', async (s) => ({ token: await idp.token(s), body: JSON.stringify({ notKey: b64() }) }), 400, 'invalid_input'],
      ['key given twice (Key and key)', async (s) => ({ token: await idp.token(s), body: JSON.stringify({ key: b64(), Key: b64() }) }), 400, 'invalid_input'],
      ['a token from another issuer', async (s) => ({ token: await idp.token(s, { iss: 'https://identity.bitwarden.com' }), body: JSON.stringify({ key: b64() }) }), 401, 'invalid_token'],
      ['an expired token', async (s) => ({ token: await idp.token(s, { nbf: now() - 7200, iat: now() - 7200, exp: now() - 3600 }), body: JSON.stringify({ key: b64() }) }), 401, 'invalid_token'],
      ['a token without sub', async (s) => ({ token: await idp.token(s, { sub: undefined }), body: JSON.stringify({ key: b64() }) }), 401, 'invalid_token'],
      ['a token with a non-GUID sub', async () => ({ token: await idp.token('alice@example.com'), body: JSON.stringify({ key: b64() }) }), 401, 'invalid_token'],
      ['a token without the api scope', async (s) => ({ token: await idp.token(s, { scope: ['offline_access'] }), body: JSON.stringify({ key: b64() }) }), 401, 'invalid_token'],
      ['a token whose amr is neither Application nor external', async (s) => ({ token: await idp.token(s, { amr: ['pwd'] }), body: JSON.stringify({ key: b64() }) }), 401, 'invalid_token'],
      ['a token signed by a key not in the JWKS', async (s) => ({ token: await idp.token(s, {}, { key: await newSigningKey() }), body: JSON.stringify({ key: b64() }) }), 401, 'invalid_token'],
      ['alg: none', async (s) => ({ token: algNone(s), body: JSON.stringify({ key: b64() }) }), 401, 'invalid_token'],
      ['HS256 keyed with the public key', async (s) => ({ token: await hs256WithPublicKey(s), body: JSON.stringify({ key: b64() }) }), 401, 'invalid_token'],
      ['no token', async () => ({ token: '', body: JSON.stringify({ key: b64() }) }), 401, 'invalid_token'],
    ];

    test.each(cases)('%s', async (_name, make, status, code) => {
      const sub = guid();
      const { token, body } = await make(sub);
      const before = (await events()).length;
      for (const method of ['POST', 'PUT'] as const) {
        const r = await sendKey(method, token, body);
        expect(r.status).toBe(status);
        expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        const problem = await r.json();
        expect(problem).toMatchObject({ status, code });
        expect(JSON.stringify(problem)).not.toMatch(/at .*\.ts:\d+/); // no stack trace
        if (status === 401) expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
      }
      expect(await row(sub)).toBeNull();
      expect(await ctx.store.dataSource.manager.count(KeyConnectorUserKeyEntity, { where: { sub: 'alice@example.com' } })).toBe(0);
      const recorded = (await events()).slice(0, (await events()).length - before);
      expect(recorded).toHaveLength(2);
      expect(recorded.every((e) => e.outcome === 'refused' && e.action === 'key-connector.request')).toBe(true);
      if (status === 400) expect(recorded.every((e) => e.targetId === sub)).toBe(true);
    });
  });

  test('the identity server unreachable: 503 + Retry-After, nothing stored; it recovers', async () => {
    const fresh = await createTestContext(kind, { CS_KEY_CONNECTOR_ISSUER: idp.issuer });
    try {
      const sub = guid();
      idp.down = true;
      const { default: request } = await import('supertest');
      const r = await request(fresh.app).post('/key-connector/user-keys').set('Authorization', `Bearer ${await idp.token(sub)}`).send({ key: b64() });
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBeDefined();
      expect(await fresh.store.dataSource.manager.count(KeyConnectorUserKeyEntity)).toBe(0);
      idp.down = false;
      const ok = await request(fresh.app).post('/key-connector/user-keys').set('Authorization', `Bearer ${await idp.token(sub)}`).send({ key: b64() });
      expect(ok.status).toBe(200);
    } finally {
      idp.down = false;
      await fresh.cleanup();
    }
  });

  test('CORS: the web vault origin may call the API (preflight and request); another origin gets no CORS grant', async () => {
    const preflight = (origin: string) =>
      fetch(`${url}/user-keys`, { method: 'OPTIONS', headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type,bitwarden-client-name,bitwarden-client-version' } });
    const ok = await preflight(WEB_VAULT);
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(WEB_VAULT);
    expect(ok.headers.get('access-control-allow-methods')).toContain('PUT');
    expect(ok.headers.get('access-control-allow-headers')).toContain('Bitwarden-Client-Name');
    const evil = await preflight('https://evil.example.com');
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    expect(evil.headers.get('access-control-allow-methods')).toBeNull();

    const token = await idp.token(guid());
    const fromVault = await getKey(token, { Origin: WEB_VAULT });
    expect(fromVault.headers.get('access-control-allow-origin')).toBe(WEB_VAULT);
    expect(fromVault.headers.get('vary')).toMatch(/Origin/);
    const fromEvil = await getKey(token, { Origin: 'https://evil.example.com' });
    expect(fromEvil.headers.get('access-control-allow-origin')).toBeNull();
  });

  test('POST race: two app instances on one database, concurrent POSTs for one user — exactly one wins', async () => {
    // A second replica: its own process state, pool and verifier; the same database and KEK.
    const second = await boot(ctx.config, pino({ level: 'silent' }), { migrate: false });
    const other = await listen(createApp(second));
    try {
      for (let round = 0; round < 5; round++) {
        const sub = guid();
        const token = await idp.token(sub);
        const keys = [b64(), b64(), b64(), b64()];
        const urls = [url, `${other.url}/key-connector`, url, `${other.url}/key-connector`];
        const results = await Promise.all(
          keys.map((key, i) => fetch(`${urls[i]}/user-keys`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json; charset=utf-8' }, body: JSON.stringify({ key }) })),
        );
        const statuses = results.map((r) => r.status);
        expect(statuses.filter((s) => s === 200)).toHaveLength(1);
        expect(statuses.filter((s) => s === 400)).toHaveLength(3);
        const winner = keys[statuses.indexOf(200)];
        for (const base of [url, `${other.url}/key-connector`]) {
          const r = await fetch(`${base}/user-keys`, { headers: { Authorization: `Bearer ${token}` } });
          expect(await r.json()).toEqual({ key: winner });
        }
        const trail = await events(sub);
        expect(trail.filter((e) => e.action === 'key-connector.create' && e.outcome === 'success')).toHaveLength(1);
        expect(trail.filter((e) => e.action === 'key-connector.create' && e.outcome === 'refused')).toHaveLength(3);
      }
    } finally {
      await other.close();
      await second.close();
    }
  });
});

describe('Key Connector: signing key rotation at the identity server', () => {
  test('a token signed by a key added after the JWKS was cached is accepted once the JWKS is refetched for its kid', async () => {
    const idp = await startOidcIssuer();
    const ctx = await createTestContext('sqlite', { CS_KEY_CONNECTOR_ISSUER: idp.issuer });
    try {
      const { default: request } = await import('supertest');
      const get = async (token: string) => (await request(ctx.app).get('/key-connector/user-keys').set('Authorization', `Bearer ${token}`)).status;
      expect(await get(await idp.token(guid()))).toBe(404);
      const fetchedBefore = idp.jwksRequests;
      const rotated = await idp.newKey();
      // jose refetches a JWKS for an unknown kid at most once per cooldown (5 s here).
      await new Promise((r) => setTimeout(r, 5200));
      expect(await get(await idp.token(guid(), {}, { key: rotated }))).toBe(404);
      expect(idp.jwksRequests).toBe(fetchedBefore + 1);
    } finally {
      await ctx.cleanup();
      await idp.close();
    }
  });

  test('without an issuer the API is not mounted', async () => {
    const ctx = await createTestContext('sqlite');
    try {
      const { default: request } = await import('supertest');
      expect((await request(ctx.app).get('/key-connector/alive')).status).toBe(404);
    } finally {
      await ctx.cleanup();
    }
  });
});
