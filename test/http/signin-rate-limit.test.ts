import request from 'supertest';
import { createAuthFixture, type AuthFixture } from '../support/auth-fixture';

/** The unauthenticated sign-in endpoints share one per-address limit, counted in the database. */
describe.each([
  ['without CS_TRUST_PROXY', {}],
  ['with CS_TRUST_PROXY=loopback', { CS_TRUST_PROXY: 'loopback' }],
])('sign-in rate limit %s', (_label, env) => {
  let f: AuthFixture;
  beforeAll(async () => {
    f = await createAuthFixture('sqlite', { CS_SIGNIN_RATE_LIMIT_PER_MINUTE: '3', ...env });
  });
  afterAll(async () => f?.cleanupAll());

  const from = (ip: string) => ({ 'X-Forwarded-For': ip });

  test('over the limit: 429 with Retry-After on authorize, ACS and token alike', async () => {
    const ip = '203.0.113.7';
    await request(f.app).get('/oauth/authorize').set(from(ip));
    await request(f.app).post('/auth/saml/acs').set(from(ip)).type('form').send({ SAMLResponse: 'x' });
    await request(f.app).post('/oauth/token').set(from(ip)).type('form').send({ grant_type: 'authorization_code' });
    for (const r of [
      await request(f.app).get('/oauth/authorize').set(from(ip)),
      await request(f.app).post('/oauth/token').set(from(ip)).type('form').send({}),
    ]) {
      expect(r.status).toBe(429);
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
      expect(r.headers['ratelimit-remaining']).toBe('0');
    }
  });

  test('another client address has its own budget only when the proxy is trusted (X-Forwarded-For cannot be spoofed otherwise)', async () => {
    const r = await request(f.app).get('/oauth/authorize').set(from('198.51.100.9'));
    if ('CS_TRUST_PROXY' in env) expect(r.status).not.toBe(429);
    else expect(r.status).toBe(429);
  });
});
