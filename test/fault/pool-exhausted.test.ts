import type { RequestListener } from 'node:http';
import request from 'supertest';
import { createRequestListener } from '../../server/http/app';
import { testDatabaseNames } from '../support/databases';
import { idpAnswer, postToAcs, redeem, signedInUser, signInForCode, signInForToken, startSignIn } from '../support/auth-fixture';
import { newUser } from '../scim/support';
import { faultFixture, SLACK_MS, type FaultFixture } from './fixture';
import { timed } from './support';

const ACQUIRE_TIMEOUT_MS = 500;

/**
 * Every database connection (SQLite: its single writer) is taken by requests that do not finish.
 * A new request waits at most CS_DB_ACQUIRE_TIMEOUT_MS, then gets 503 + Retry-After in its
 * protocol's format; nothing is written; once the connections come back, it is served.
 */
describe.each(testDatabaseNames())('database pool exhausted (%s)', (kind) => {
  let f: FaultFixture;
  let aliceToken: string;
  // The listener `serve` runs: the key API's fast path ahead of the Express app.
  let fast: RequestListener;
  let bob: { token: string; wrappedPasswordKey: string };
  beforeAll(async () => {
    f = await faultFixture(kind, { CS_DB_POOL_SIZE: '2', CS_DB_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS) });
    await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' });
    aliceToken = await signInForToken(f, { nameId: 'alice@example.com' });
    fast = createRequestListener(f);
    bob = await signedInUser(f, 'bob@example.com');
  });
  const unwrap = (id: string) =>
    request(fast).post('/api/keys/password-key/unwrap').set('Authorization', `Bearer ${bob.token}`).set('X-Request-Id', id).send({ wrappedPasswordKey: bob.wrappedPasswordKey });
  afterAll(async () => f?.close());

  test('503 + Retry-After within the acquire timeout, no half-write, served again after', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const holders: Promise<unknown>[] = [];
    const slots = kind === 'sqlite' ? 1 : 2;
    let opened = 0;
    // A code from a sign-in just before the squeeze, redeemed during it.
    const pending = await signInForCode(f, { nameId: 'alice@example.com' });
    const exchange = () => redeem(f, { grant_type: 'authorization_code', code: pending.code, redirect_uri: pending.started.redirectUri, client_id: pending.started.clientId, code_verifier: pending.started.verifier });
    // A sign-in whose IdP answer reaches the ACS during the squeeze.
    const started = await startSignIn(f);
    const answer = await idpAnswer(f, started, { nameId: 'alice@example.com' });
    try {
      for (let i = 0; i < slots; i++) holders.push(f.store.transaction(async (t) => { await t.manager.query('SELECT 1'); opened++; await held; }));
      while (opened < slots) await new Promise((r) => setTimeout(r, 10));

      const create = await timed(Promise.resolve(f.scimPost('/Users', newUser('squeezed@example.com'))));
      expect(create.ms).toBeLessThan(ACQUIRE_TIMEOUT_MS + SLACK_MS);
      expect(create.value?.status).toBe(503);
      expect(Number(create.value?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(create.value?.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '503' });

      if (kind !== 'sqlite') {
        // Reads need a pooled connection too (SQLite reads do not queue behind its writer).
        const me = await timed(Promise.resolve(request(f.app).get('/api/keys/me').set('Authorization', `Bearer ${aliceToken}`)));
        expect(me.ms).toBeLessThan(ACQUIRE_TIMEOUT_MS + SLACK_MS);
        expect(me.value?.status).toBe(503);
        expect(me.value?.headers['content-type']).toMatch(/application\/problem\+json/);
        expect(Number(me.value?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      }
      // The fast path's unwrap: its audit row cannot be committed (the group commit waits for a
      // connection, SQLite's for the writer), so no key leaves.
      const squeezed = await timed(Promise.resolve(unwrap(`squeezed-${kind}`)));
      expect(squeezed.ms).toBeLessThan(ACQUIRE_TIMEOUT_MS + SLACK_MS);
      expect(squeezed.value?.status).toBe(503);
      expect(squeezed.value?.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(Number(squeezed.value?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(squeezed.value?.body.passwordKey).toBeUndefined();
      // The token endpoint: 503 in OAuth's JSON, and the code is not used up by it.
      const token = await timed(Promise.resolve(exchange()));
      expect(token.ms).toBeLessThan(ACQUIRE_TIMEOUT_MS + SLACK_MS);
      expect(token.value?.status).toBe(503);
      expect(Number(token.value?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(token.value?.body.access_token).toBeUndefined();
      // Sign-in: the ACS (SAML request state, the code) and /oauth/authorize need the database: 503,
      // and no redirect carrying a code.
      const acs = await timed(Promise.resolve(postToAcs(f, answer)));
      expect(acs.ms).toBeLessThan(ACQUIRE_TIMEOUT_MS + SLACK_MS);
      expect(acs.value?.status).toBe(503);
      expect(acs.value?.headers.location).toBeUndefined();
      const authorize = await timed(startSignIn(f));
      expect(authorize.ms).toBeLessThan(ACQUIRE_TIMEOUT_MS + SLACK_MS);
      expect(String(authorize.error)).toMatch(/authorize answered 503/);
      // Still alive: a busy pool is not a wedged one until CS_HEALTH_MAX_POOL_STALL_MS.
      expect((await request(f.app).get('/healthz')).status).toBe(200);
    } finally {
      release();
      await Promise.allSettled(holders);
    }
    const found = await f.scimGet(`/Users?filter=${encodeURIComponent('userName eq "squeezed@example.com"')}`).expect(200);
    expect(found.body.totalResults).toBe(0);
    await f.scimPost('/Users', newUser('squeezed@example.com')).expect(201);
    await request(f.app).get('/api/keys/me').set('Authorization', `Bearer ${aliceToken}`).expect(200);
    const audited = await f.store.repos.audit.recent(50, { action: 'password-key.unwrap' });
    expect(audited.filter((e) => e.requestId === `squeezed-${kind}` && e.outcome === 'success')).toEqual([]);
    const served = await unwrap(`after-${kind}`).expect(200);
    // Nothing of the refused ACS was kept: the same IdP answer completes the sign-in now.
    const acs = await postToAcs(f, answer);
    expect(acs.status).toBe(303);
    expect(new URL(String(acs.headers.location)).searchParams.get('code')).toEqual(expect.any(String));
    // The client's retry with the same code gets its token.
    expect((await exchange().expect(200)).body.access_token).toEqual(expect.any(String));
    expect(typeof served.body.passwordKey).toBe('string');
  });
});
