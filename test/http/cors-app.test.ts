import request from 'supertest';
import { createAuthFixture, signInForToken, type AuthFixture } from '../support/auth-fixture';
import { createTestContext, type TestContext } from '../support/context';

/** Managed CORS and helmet on the real app: browser-facing API routes only, exact origins only. */
describe('CORS and security headers on the app', () => {
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

  test('preflight for the key API from the allowed origin is cached; from others, nothing', async () => {
    const ok = await request(f.app).options('/api/keys/me').set('Origin', 'https://app.example.com').set('Access-Control-Request-Method', 'GET').set('Access-Control-Request-Headers', 'authorization');
    expect(ok.status).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(ok.headers['access-control-allow-headers']).toMatch(/Authorization/);
    expect(ok.headers['access-control-max-age']).toBe('600');
    expect(ok.headers.vary).toMatch(/Origin/);
    const evil = await request(f.app).options('/api/keys/me').set('Origin', 'https://evil.example').set('Access-Control-Request-Method', 'GET');
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
    expect(evil.headers['access-control-allow-headers']).toBeUndefined();
  });

  test('actual requests: allowed origin echoed exactly, others get no CORS headers, never credentials', async () => {
    const ok = await request(f.app).get('/api/keys/me').set('Origin', 'https://app.example.com').set('Authorization', `Bearer ${token}`);
    expect(ok.status).toBe(200);
    expect(ok.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(ok.headers['access-control-allow-credentials']).toBeUndefined();
    const evil = await request(f.app).get('/api/keys/me').set('Origin', 'https://evil.example').set('Authorization', `Bearer ${token}`);
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
    expect(evil.headers.vary).toMatch(/Origin/);
    const tokenEndpoint = await request(f.app).options('/oauth/token').set('Origin', 'https://app.example.com').set('Access-Control-Request-Method', 'POST');
    expect(tokenEndpoint.headers['access-control-allow-origin']).toBe('https://app.example.com');
    const foreign = await request(f.app).post('/oauth/token').set('Origin', 'https://evil.example').type('form').send({ grant_type: 'authorization_code', client_id: 'web', code: 'x', redirect_uri: 'https://app.example.com/callback', code_verifier: 'x' });
    expect(foreign.status).toBe(400);
    expect(foreign.body).toMatchObject({ error: 'unauthorized_client' });
    expect(foreign.headers['access-control-allow-origin']).toBeUndefined();
    const jwks = await request(f.app).get('/.well-known/jwks.json').set('Origin', 'https://app.example.com');
    expect(jwks.headers['access-control-allow-origin']).toBe('https://app.example.com');
  });

  test('navigation endpoints (authorize, ACS) carry no CORS headers; helmet headers everywhere', async () => {
    const authorize = await request(f.app).get('/oauth/authorize').set('Origin', 'https://app.example.com').query({ client_id: 'nope' });
    expect(authorize.headers['access-control-allow-origin']).toBeUndefined();
    const acs = await request(f.app).post('/auth/saml/acs').set('Origin', 'https://app.example.com').type('form').send({});
    expect(acs.headers['access-control-allow-origin']).toBeUndefined();
    for (const res of [authorize, acs, await request(f.app).get('/api/keys/me')]) {
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['content-security-policy']).toMatch(/default-src 'self'/);
      expect(res.headers['strict-transport-security']).toBeDefined();
      expect(res.headers['x-powered-by']).toBeUndefined();
      expect(res.headers['set-cookie']).toBeUndefined();
    }
  });
});

describe('without SAML configured', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite', { CS_CLIENTS: JSON.stringify([{ clientId: 'web', redirectUris: ['https://app.example.com/cb'] }]) });
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  test('authorize answers a clear 503 page', async () => {
    const res = await request(ctx.app).get('/oauth/authorize').query({ response_type: 'code', client_id: 'web', redirect_uri: 'https://app.example.com/cb', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' });
    expect(res.status).toBe(503);
    expect(res.text).toMatch(/Sign-in is unavailable/);
  });
});
