import type { RequestListener } from 'node:http';
import request from 'supertest';
import { createRequestListener } from '../../server/http/app';
import { testDatabaseNames } from '../support/databases';
import { signedInUser } from '../support/auth-fixture';
import { BREAKER_COOLDOWN_MS, faultFixture, KMS_DEADLINE_MS, SLACK_MS, type FaultFixture } from '../fault/fixture';
import { timed } from '../fault/support';

/**
 * The key API's fast path while its KMS (a Vault emulator behind a TCP proxy) hangs or is killed:
 * unwraps and bundles get a prompt 503 problem+json with Retry-After and no key, exactly as the
 * Express routes answer, the refusal is audited, requests that need no KMS are served meanwhile
 * (nothing is held across the KMS call), and the next unwrap after recovery succeeds.
 */
describe.each(testDatabaseNames())('key API fast path, KMS outage (%s)', (kind) => {
  let f: FaultFixture;
  let fast: RequestListener;
  let token: string;
  let blob: string;
  beforeAll(async () => {
    f = await faultFixture(kind);
    fast = createRequestListener(f);
    ({ wrappedPasswordKey: blob, token } = await signedInUser(f, 'alice@example.com'));
  });
  afterAll(async () => f?.close());

  const unwrap = (app: RequestListener, id: string) =>
    request(app).post('/api/keys/password-key/unwrap').set('Authorization', `Bearer ${token}`).set('X-Request-Id', id).send({ wrappedPasswordKey: blob });

  test.each(['hung', 'killed'] as const)('KMS %s: prompt 503s like the Express routes, audited, no key; other requests served; recovery', async (mode) => {
    if (mode === 'hung') f.proxy.hang();
    else await f.proxy.kill();
    try {
      const ids = [1, 2, 3].map((i) => `kms-${mode}-${kind}-${i}`);
      const pending = ids.map((id) => timed(Promise.resolve(unwrap(fast, id))));
      // Meanwhile the key bundle's refusal and a request that needs no KMS are answered.
      const health = await timed(Promise.resolve(request(fast).get('/healthz')));
      expect(health.value?.status).toBe(200);
      const me = await timed(Promise.resolve(request(fast).get('/api/keys/me').set('Authorization', `Bearer ${token}`)));
      const bound = KMS_DEADLINE_MS + SLACK_MS;
      for (const r of [...(await Promise.all(pending)), me]) {
        expect(r.ms).toBeLessThan(bound);
        expect(r.value?.status).toBe(503);
        expect(r.value?.headers['retry-after']).toMatch(/^\d+$/);
        expect(r.value?.headers['content-type']).toBe('application/problem+json; charset=utf-8');
        expect(r.value?.headers['cache-control']).toBe('no-store');
        expect(r.value?.body.passwordKey).toBeUndefined();
      }
      // The Express routes answer the same refusal with the same document.
      const viaExpress = await unwrap(f.app, `kms-${mode}-${kind}-express`);
      const first = (await pending[0]!).value!;
      expect(viaExpress.status).toBe(first.status);
      expect({ ...viaExpress.body, requestId: undefined }).toEqual({ ...first.body, requestId: undefined });

      const rows = await f.store.repos.audit.recent(50, { action: 'password-key.unwrap' });
      for (const id of ids) expect(rows.filter((e) => e.requestId === id).map((e) => e.outcome)).toEqual(['failure']);
    } finally {
      await f.proxy.restore();
    }
    await new Promise((r) => setTimeout(r, BREAKER_COOLDOWN_MS + 100));
    const ok = await unwrap(fast, `kms-${mode}-${kind}-after`);
    expect(ok.status).toBe(200);
    expect(Buffer.from(ok.body.passwordKey, 'base64url')).toHaveLength(32);
  });
});
