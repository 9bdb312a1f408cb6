import { createHash, randomBytes } from 'node:crypto';
import request from 'supertest';
import type { Express } from 'express';
import { createTestContext, type TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import type { AuthServices } from '../../server/auth';
import { signAccessToken } from '../../server/auth/tokens';
import { codeDigest } from '../../server/auth/pkce';
import { adminRoutes, ADMIN_CLIENT_ID, PUBLIC_ROUTES } from '../../admin/routes';
import { mintSession, SESSION_COOKIE, SIGN_IN_COOKIE, type SessionOptions } from '../../admin/session';
import { OutboxRepository } from '../../scim/repositories/outbox';
import { OutboxEntity } from '../../entities/scim';
import { ApiTokenEntity } from '../../entities/scim';
import { consoleContext, CONSOLE_PUBLIC_URL } from './support';

/**
 * Every /admin route, enumerated from the router itself so a new one cannot be forgotten:
 * without a session it redirects to sign-in (GET) or answers 401; with a tampered, expired or
 * foreign cookie likewise; with a non-administrator's session 403; and a POST without this
 * session's CSRF token 403, changing nothing. Runs on SQLite, PostgreSQL and MariaDB.
 */
jest.setTimeout(120_000);

const PUBLIC_URL = CONSOLE_PUBLIC_URL;

function routesOf(auth: AuthServices, ctx: TestContext): { method: string; path: string }[] {
  const router = adminRoutes(ctx, auth) as unknown as { stack: { route?: { path: string; methods: Record<string, boolean> } }[] };
  return router.stack.flatMap((l) => (l.route ? Object.keys(l.route.methods).filter((m) => m !== '_all').map((m) => ({ method: m.toUpperCase(), path: l.route!.path })) : []));
}

const concrete = (path: string) => path.replace(':id', 'a'.repeat(24)).replace(':seq', '1');

describe.each(testDatabaseNames())('console access on %s', (kind) => {
  let ctx: TestContext;
  let auth: AuthServices;
  let app: Express;
  let adminId: string;
  let otherId: string;
  let groupId: string;
  let options: SessionOptions;
  const sessionCookie = (token: string) => `${SESSION_COOKIE}=${token}`;
  const session = (userId: string, minutes = 30) => mintSession(auth.signingKeys, { ...options, minutes }, { userId, byAttribute: false }, { actor: 'test' });

  beforeAll(async () => {
    ({ ctx, auth, app } = await consoleContext(kind));
    options = { issuer: ctx.config.auth.tokens.issuer, audience: `${PUBLIC_URL}/admin`, minutes: 30 };
    adminId = (await ctx.keys.provisionUser({ userName: 'root@example.com' }, { actor: 'test' })).id;
    otherId = (await ctx.keys.provisionUser({ userName: 'someone@example.com' }, { actor: 'test' })).id;
    groupId = (await ctx.keys.provisionGroup({ displayName: 'Key Admins', memberIds: [adminId] }, { actor: 'test' })).id;
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  test('the route list is the one the tests walk (pages, forms, sign-in)', () => {
    const all = routesOf(auth, ctx).map((r) => `${r.method} ${r.path}`);
    for (const p of PUBLIC_ROUTES) expect(all).toContain(p);
    expect(all).toEqual(expect.arrayContaining(['GET /', 'GET /status', 'GET /tokens', 'POST /tokens', 'GET /tokens/created/:id', 'POST /tokens/:id/revoke', 'POST /outbox/:seq/retry', 'POST /logout', 'GET /audit/export']));
  });

  test('every non-public route: no session → sign-in or 401; bad cookies likewise; non-admin → 403; admin → served', async () => {
    const admin = await session(adminId);
    const other = await session(otherId);
    const expired = await session(adminId, -1);
    const [h, p, s] = admin.token.split('.');
    const tampered = [h, Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: otherId })).toString('base64url'), s].join('.');
    const key = await auth.signingKeys.signingKey({ actor: 'test' });
    const accessToken = (await signAccessToken({ kid: key.kid, privateKey: key.privateKey, userId: adminId, clientId: 'web', issuer: options.issuer, audience: options.audience, ttlSeconds: 300 })).token;
    const badCookies = { none: undefined, tampered, expired: expired.token, 'access token': accessToken, garbage: 'x.y.z' };

    const routes = routesOf(auth, ctx).filter((r) => !(PUBLIC_ROUTES as readonly string[]).includes(`${r.method} ${r.path}`));
    expect(routes.length).toBeGreaterThanOrEqual(10);
    for (const r of routes) {
      const path = `/admin${concrete(r.path)}`;
      const call = (cookie?: string, body?: Record<string, string>) => {
        const t = r.method === 'GET' ? request(app).get(path) : request(app).post(path).type('form').send(body ?? {});
        return cookie ? t.set('Cookie', cookie) : t;
      };
      for (const [what, token] of Object.entries(badCookies)) {
        const res = await call(token && sessionCookie(token), { csrf: admin.session.csrf });
        const expected = r.method === 'GET' ? 303 : 401;
        expect([`${r.method} ${r.path} (${what})`, res.status]).toEqual([`${r.method} ${r.path} (${what})`, expected]);
        if (r.method === 'GET') expect(res.headers.location).toBe('/admin/login');
        expect(res.text).not.toContain('root@example.com');
      }
      const refused = await call(sessionCookie(other.token), { csrf: other.session.csrf });
      expect([`${r.method} ${r.path} (non-admin)`, refused.status]).toEqual([`${r.method} ${r.path} (non-admin)`, 403]);
      expect(refused.text).toContain('Not an administrator');
      if (r.method === 'GET') {
        const ok = await call(sessionCookie(admin.token));
        expect([`${r.method} ${r.path} (admin)`, ok.status]).toEqual([`${r.method} ${r.path} (admin)`, 200]);
      } else {
        for (const csrf of [undefined, 'wrong', other.session.csrf]) {
          const res = await call(sessionCookie(admin.token), csrf === undefined ? {} : { csrf });
          expect([`${r.method} ${r.path} (csrf ${csrf})`, res.status]).toEqual([`${r.method} ${r.path} (csrf ${csrf})`, 403]);
          expect(res.text).toContain('Form expired');
        }
      }
    }
  });

  test('pages carry the strict CSP, no-store, and the session cookie attributes', async () => {
    const admin = await session(adminId);
    const res = await request(app).get('/admin/status').set('Cookie', sessionCookie(admin.token)).expect(200);
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
    expect(res.headers['content-security-policy']).not.toMatch(/script-src[^;]*unsafe-inline/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.text).not.toMatch(/<script>|<script [^>]*>[^<]/); // scripts only by src
    expect(res.text).toContain('<script src="/admin/assets/console.js" defer></script>');
    await request(app).get('/admin/assets/console.js').expect(200).expect('Content-Type', /javascript/);
    await request(app).get('/').expect(303).expect('Location', '/admin/');
  });

  test('a CSRF-checked POST does its work once, and is audited; the token it made works and its revoke sticks', async () => {
    const admin = await session(adminId);
    const posted = await request(app).post('/admin/tokens').set('Cookie', sessionCookie(admin.token)).type('form').send({ csrf: admin.session.csrf, name: 'ci', scope: 'backend' }).expect(303);
    const created = await request(app).get(posted.headers.location).set('Cookie', sessionCookie(admin.token)).expect(200);
    const token = /cst_[0-9a-f]{24}\.[A-Za-z0-9_-]{43}/.exec(created.text)![0];
    const id = token.slice(4, 28);
    const rows = await ctx.store.repos.manager.find(ApiTokenEntity, { where: { name: 'ci' } });
    expect(rows.map((r) => r.id)).toEqual([id]);
    expect(rows[0].secret_hash).not.toContain(token.slice(29)); // only the hash is stored
    await request(app).get('/backend/v1/users/00000000-0000-0000-0000-000000000000/public-keys').set('Authorization', `Bearer ${token}`).expect((r) => expect(r.status).not.toBe(401));

    const bad = await request(app).post('/admin/tokens').set('Cookie', sessionCookie(admin.token)).type('form').send({ csrf: admin.session.csrf, name: 'x', scope: 'root' }).expect(400);
    expect(bad.text).toContain('unknown token scope');
    expect(await ctx.store.repos.manager.count(ApiTokenEntity, { where: { name: 'x' } })).toBe(0);

    await request(app).post(`/admin/tokens/${id}/revoke`).set('Cookie', sessionCookie(admin.token)).type('form').send({ csrf: admin.session.csrf }).expect(303).expect('Location', '/admin/tokens');
    await request(app).get('/backend/v1/users/00000000-0000-0000-0000-000000000000/public-keys').set('Authorization', `Bearer ${token}`).expect(401);
    const audit = await ctx.store.repos.audit.recent(20);
    expect(audit.find((e) => e.action === 'admin.token.create' && e.outcome === 'success')).toMatchObject({ actor: `user:${adminId}`, targetId: id });
    expect(audit.find((e) => e.action === 'admin.token.create' && e.outcome === 'refused')).toBeDefined();
    expect(audit.find((e) => e.action === 'admin.token.revoke')).toMatchObject({ outcome: 'success', targetId: id });
  });

  test('Retry now makes a failed delivery due at once (as outbox retry does)', async () => {
    const admin = await session(adminId);
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const seq = await ctx.store.transaction(async (t) => {
      const repo = new OutboxRepository(t.manager);
      await repo.enqueue({ resourceType: 'User', resourceId: adminId, eventType: 'user.updated', data: {} });
      const row = (await repo.recent(1))[0];
      await repo.markFailed(row.seq, 3, later, 'HTTP 502 from the webhook');
      return row.seq;
    });
    const page = await request(app).get('/admin/provisioning').set('Cookie', sessionCookie(admin.token)).expect(200);
    expect(page.text).toContain('HTTP 502 from the webhook');
    expect(page.text).toContain(`/admin/outbox/${seq}/retry`);
    const before = Date.now();
    await request(app).post(`/admin/outbox/${seq}/retry`).set('Cookie', sessionCookie(admin.token)).type('form').send({ csrf: admin.session.csrf }).expect(303);
    const row = await ctx.store.repos.manager.findOneByOrFail(OutboxEntity, { seq });
    expect(Date.parse(row.next_attempt_at)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(row.next_attempt_at)).toBeLessThan(Date.parse(later));
    await request(app).post(`/admin/outbox/999999/retry`).set('Cookie', sessionCookie(admin.token)).type('form').send({ csrf: admin.session.csrf }).expect(303);
    expect((await ctx.store.repos.audit.recent(5, { action: 'admin.outbox.retry', outcome: 'refused' }))[0]).toMatchObject({ targetId: '999999' });
  });

  test('Audit pages by keyset (50 a page, Older events), and a bad filter is a 400 page naming it', async () => {
    const admin = await session(adminId);
    const get = (path: string) => request(app).get(path).set('Cookie', sessionCookie(admin.token));
    for (let i = 0; i < 60; i++) await ctx.store.audit({ actor: 'test', action: 'paging.probe', outcome: 'success', targetType: 'probe', targetId: String(i) });
    const first = await get('/admin/audit?action=paging.probe').expect(200);
    const ids = (html: string) => [...html.matchAll(/<td>probe (\d+)<\/td>/g)].map((m) => Number(m[1]));
    expect(ids(first.text)).toEqual(Array.from({ length: 50 }, (_, i) => 59 - i));
    const next = /id="audit-next" href="([^"]+)"/.exec(first.text)![1].replace(/&amp;/g, '&');
    const second = await get(next).expect(200);
    expect(ids(second.text)).toEqual(Array.from({ length: 10 }, (_, i) => 9 - i));
    expect(second.text).not.toContain('audit-next');
    const bad = await get('/admin/audit?since=yesterday-ish').expect(400);
    expect(bad.text).toContain('since');
    expect(bad.text).toMatch(/ISO 8601|relative/);
    expect(bad.text).not.toMatch(/at .*\.ts:\d+/); // no stack trace
    await get('/admin/audit/export?outcome=maybe').expect(400);
  });

  test('rights are re-checked per request: removed from the group, the same session gets 403', async () => {
    const admin = await session(adminId);
    await request(app).get('/admin/tokens').set('Cookie', sessionCookie(admin.token)).expect(200);
    await ctx.keys.removeMembers(groupId, [adminId], { actor: 'test' });
    try {
      await request(app).get('/admin/tokens').set('Cookie', sessionCookie(admin.token)).expect(403);
    } finally {
      await ctx.keys.addMembers(groupId, [adminId], { actor: 'test' });
    }
    await request(app).get('/admin/tokens').set('Cookie', sessionCookie(admin.token)).expect(200);
    await ctx.keys.setUserActive(adminId, false, { actor: 'test' });
    try {
      const res = await request(app).get('/admin/tokens').set('Cookie', sessionCookie(admin.token)).expect(403);
      expect(res.text).toContain('deactivated');
    } finally {
      await ctx.keys.setUserActive(adminId, true, { actor: 'test' });
    }
  });

  test('sign-in completion: the code must be the console\'s, unused, and redeemed by the browser that started it', async () => {
    const nonce = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(nonce).digest('base64url');
    const issue = async (clientId: string, userId = adminId) => {
      const code = randomBytes(32).toString('base64url');
      const now = new Date();
      await ctx.store.writeNow((t) =>
        t.authCodes.insert({ codeHash: codeDigest(code), clientId, redirectUri: `${PUBLIC_URL}/admin/auth/complete`, codeChallenge: challenge, userId, expiresAt: new Date(now.getTime() + 60_000).toISOString(), consumedAt: null, createdAt: now.toISOString() }),
      );
      return code;
    };
    const complete = (code: string | undefined, browserNonce?: string) => {
      const t = request(app).get(`/admin/auth/complete${code ? `?code=${code}` : ''}`);
      return browserNonce ? t.set('Cookie', `${SIGN_IN_COOKIE}=${browserNonce}`) : t;
    };
    await complete(undefined, nonce).expect(400);
    const elsewhere = await complete(await issue(ADMIN_CLIENT_ID), randomBytes(32).toString('base64url')).expect(400);
    expect(elsewhere.text).toContain('another browser');
    await complete(await issue(ADMIN_CLIENT_ID)).expect(400); // no browser cookie at all
    await complete(await issue('web'), nonce).expect(400); // a client's code is not a console sign-in
    await complete(await issue(ADMIN_CLIENT_ID, otherId), nonce).expect(403); // not an administrator

    const code = await issue(ADMIN_CLIENT_ID);
    const ok = await complete(code, nonce).expect(200);
    const set = ([] as string[]).concat(ok.headers['set-cookie'] ?? []);
    const cookie = set.find((c) => c.startsWith(`${SESSION_COOKIE}=`))!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\/admin/);
    expect(cookie).toMatch(/Max-Age=1800/);
    const token = cookie.slice(SESSION_COOKIE.length + 1).split(';')[0];
    await request(app).get('/admin/status').set('Cookie', `${SESSION_COOKIE}=${token}`).expect(200);
    await complete(code, nonce).expect(400); // replay: the code is used up

    const events = await ctx.store.repos.audit.recent(20, { action: 'admin.login' });
    expect(events[0]).toMatchObject({ outcome: 'refused' });
    expect(events.filter((e) => e.outcome === 'success')).toHaveLength(1);
    expect(events.filter((e) => e.outcome === 'refused').map((e) => JSON.parse(e.detail!).reason)).toEqual(
      expect.arrayContaining(['code missing', 'sign-in started in another browser', 'code issued to another client', 'code reused']),
    );
  });
});

describe('console before SAML is configured (SQLite)', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite', { CS_PUBLIC_URL: PUBLIC_URL });
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  test('only the setup checklist is shown, without sign-in; every other route is 401', async () => {
    const start = await request(ctx.app).get('/admin/').expect(200);
    expect(start.text).toContain('CS_SAML_IDP_METADATA_URL');
    expect(start.text).toContain(`${PUBLIC_URL}/auth/saml/metadata`);
    expect(start.text).toContain(`${PUBLIC_URL}/auth/saml/acs`);
    expect(start.text).toContain('crypto-server token create --scope scim');
    expect(start.text).not.toContain('Sign out');
    expect(ctx.config.kms.kekUri).toBe('local://default');
    // Anyone can read this page: it says what is set, never the values, and does not call the KMS.
    expect(start.text).not.toContain('local://default');
    const kmsCalls = jest.spyOn(ctx.kms, 'check');
    await request(ctx.app).get('/admin/').expect(200);
    expect(kmsCalls).not.toHaveBeenCalled();
    kmsCalls.mockRestore();
    await request(ctx.app).get('/').expect(303).expect('Location', '/admin/');
    await request(ctx.app).get('/admin/login').expect(303).expect('Location', '/admin/');
    for (const path of ['/status', '/provisioning', '/sign-ins', '/audit', '/audit/export', '/tokens']) await request(ctx.app).get(`/admin${path}`).expect(401);
    await request(ctx.app).post('/admin/tokens').type('form').send({ name: 'x', scope: 'scim' }).expect(401);
    expect(await ctx.store.repos.manager.count(ApiTokenEntity)).toBe(0);
  });
});
