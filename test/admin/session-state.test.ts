import pino from 'pino';
import request from 'supertest';
import type { Express } from 'express';
import type { TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import { boot } from '../../server/boot';
import { createAuthServices, type AuthServices } from '../../server/auth';
import { createApp } from '../../server/http/app';
import { mintSession, SESSION_COOKIE, type SessionOptions } from '../../admin/session';
import { ApiTokenEntity } from '../../entities/scim';
import { TokenReveals, REVEAL_TTL_MS } from '../../admin/token-reveals';
import { SessionRevocations } from '../../admin/session-revocations';
import { ConsoleServices } from '../../admin/services';
import { SpyAdapter } from '../support/spy-kms';
import { consoleContext, CONSOLE_PUBLIC_URL } from './support';

/**
 * Console state that must hold across workers and replicas: a new token is shown once through
 * Post/Redirect/Get (parked wrapped by the KEK, bound to the session, deleted when shown), and
 * Sign out revokes the session server-side. "Another replica" is a second server booted on the
 * same database. On SQLite, PostgreSQL and MariaDB.
 */
jest.setTimeout(120_000);

const PUBLIC_URL = CONSOLE_PUBLIC_URL;
const TOKEN_RE = /cst_[0-9a-f]{24}\.[A-Za-z0-9_-]{43}/;

describe.each(testDatabaseNames())('console session state on %s', (kind) => {
  let ctx: TestContext;
  let auth: AuthServices;
  let app: Express;
  let replica: Awaited<ReturnType<typeof boot>>;
  let replicaApp: Express;
  let adminId: string;
  let options: SessionOptions;
  const session = () => mintSession(auth.signingKeys, options, { userId: adminId, byAttribute: false }, { actor: 'test' });
  const as = (token: string) => `${SESSION_COOKIE}=${token}`;
  const revealRows = () => ctx.store.repos.manager.query('SELECT id, session_jti, envelope FROM admin_token_reveals') as Promise<{ id: string; session_jti: string; envelope: string }[]>;

  beforeAll(async () => {
    ({ ctx, auth, app } = await consoleContext(kind));
    replica = await boot(ctx.config, pino({ level: 'silent' }));
    replicaApp = createApp(replica, createAuthServices(replica));
    options = { issuer: ctx.config.auth.tokens.issuer, audience: `${PUBLIC_URL}/admin`, minutes: 30 };
    adminId = (await ctx.keys.provisionUser({ userName: 'root@example.com' }, { actor: 'test' })).id;
    await ctx.keys.provisionGroup({ displayName: 'Key Admins', memberIds: [adminId] }, { actor: 'test' });
  });
  afterAll(async () => {
    await replica?.close();
    await ctx?.cleanup();
  });

  test('create a token: 303 to a page that shows it once (on another replica too); a reload shows "already shown", no second token', async () => {
    const admin = await session();
    const posted = await request(app).post('/admin/tokens').set('Cookie', as(admin.token)).type('form').send({ csrf: admin.session.csrf, name: 'prg', scope: 'scim' }).expect(303);
    const location = String(posted.headers.location);
    expect(location).toMatch(/^\/admin\/tokens\/created\/[A-Za-z0-9_-]{24}$/);
    expect(posted.text).not.toMatch(TOKEN_RE);

    // Parked wrapped: the database holds no token in the clear.
    const [parked] = await revealRows();
    expect(parked.session_jti).toBe(admin.session.jti);
    expect(parked.envelope).not.toMatch(/cst_/);

    // Another session of the same administrator cannot take it (and does not use it up).
    const other = await session();
    const foreign = await request(app).get(location).set('Cookie', as(other.token)).expect(200);
    expect(foreign.text).not.toMatch(TOKEN_RE);
    expect(foreign.text).toContain('already shown');

    const shown = await request(replicaApp).get(location).set('Cookie', as(admin.token)).expect(200);
    expect(shown.headers['cache-control']).toBe('no-store');
    const token = TOKEN_RE.exec(shown.text)![0];
    await request(app).get('/scim/v2/Users?count=1').set('Authorization', `Bearer ${token}`).expect(200);
    expect(await revealRows()).toHaveLength(0); // deleted when shown

    for (const a of [app, replicaApp]) {
      const again = await request(a).get(location).set('Cookie', as(admin.token)).expect(200);
      expect(again.text).not.toContain(token);
      expect(again.text).toContain('already shown');
    }
    expect(await ctx.store.repos.manager.count(ApiTokenEntity, { where: { name: 'prg' } })).toBe(1);
  });

  test('a parked token expires after two minutes, and a row moved to another reveal id or session does not open', async () => {
    const reveals = new TokenReveals(ctx.store, ctx.kms, ctx.config.kms.kekUri);
    const created = { token: 'cst_000000000000000000000000.ParkedSecretParkedSecretParkedSecretParke', name: 'n', scope: 'scim' };
    const late = await reveals.park('jti-a', created);
    expect(await reveals.take('jti-a', late, Date.now() + REVEAL_TTL_MS + 1_000)).toBeUndefined();

    const a = await reveals.park('jti-a', created);
    const b = await reveals.park('jti-b', created);
    // A database writer swaps the envelopes: each now names the other's session and id in its associated data.
    const rows = await revealRows();
    const env = (id: string) => rows.find((r) => r.id === id)!.envelope;
    const update = (id: string, envelope: string) => ctx.store.repos.manager.createQueryBuilder().update('admin_token_reveals').set({ envelope }).where('id = :id', { id }).execute();
    const [ea, eb] = [env(a), env(b)];
    await update(a, eb);
    await update(b, ea);
    await expect(reveals.take('jti-a', a)).rejects.toThrow();
    await expect(reveals.take('jti-b', b)).rejects.toThrow();
    expect(await reveals.take('jti-a', 'not-an-id')).toBeUndefined();
  });

  test('the KMS fails while a new token is parked: the token is revoked (nobody could see it), nothing parked, the plaintext zeroed', async () => {
    const spy = new SpyAdapter();
    const svc = new ConsoleServices({ ...ctx, auth, kms: spy.registry([ctx.config.kms.kekUri]) });
    spy.failNext = new Error('KMS unavailable');
    const before = (await revealRows()).length;
    await expect(svc.createToken('jti-kms-down', { name: 'kms-down', scope: 'scim' })).rejects.toThrow('KMS unavailable');
    const rows = await ctx.store.repos.manager.find(ApiTokenEntity, { where: { name: 'kms-down' } });
    expect(rows).toHaveLength(1);
    expect(rows[0].revoked_at).not.toBeNull();
    expect(await revealRows()).toHaveLength(before);
    expect(spy.wrappedPlaintexts).toHaveLength(1);
    expect(Buffer.from(spy.wrappedPlaintexts[0]).every((b) => b === 0)).toBe(true);
    // With the KMS back, the same path parks and the session takes the token once.
    const ok = await svc.createToken('jti-kms-up', { name: 'kms-up', scope: 'scim' });
    // The KMS fails as the page is loaded: nothing is lost, the next load shows the token.
    spy.failNext = new Error('KMS unavailable');
    await expect(svc.reveals.take('jti-kms-up', ok.revealId)).rejects.toThrow('KMS unavailable');
    const taken = await svc.reveals.take('jti-kms-up', ok.revealId);
    expect(taken?.token).toMatch(TOKEN_RE);
    expect(await svc.reveals.take('jti-kms-up', ok.revealId)).toBeUndefined();
  });

  test('the KMS hangs while a token page loads: no lock is held meanwhile (another session parks and takes its token), and when it gives up the token is still there for the next load', async () => {
    const spy = new SpyAdapter();
    const svc = new ConsoleServices({ ...ctx, auth, kms: spy.registry([ctx.config.kms.kekUri]) });
    const hung = await svc.createToken('jti-hung', { name: 'kms-hung', scope: 'scim' });
    const other = await svc.createToken('jti-other', { name: 'kms-other', scope: 'scim' });
    let giveUp!: (err: Error) => void;
    spy.holdUnwrap = new Promise<void>((_resolve, reject) => (giveUp = reject));
    const loading = svc.reveals.take('jti-hung', hung.revealId);
    loading.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    expect(spy.calls.unwrap).toBe(1); // the load is waiting on the KMS now
    // Meanwhile the database is free: a third token is parked (a write) by the same services.
    spy.holdUnwrap = undefined;
    const third = await svc.createToken('jti-third', { name: 'kms-third', scope: 'scim' });
    expect(third.revealId).toBeTruthy();
    expect((await svc.reveals.take('jti-other', other.revealId))?.token).toMatch(TOKEN_RE);
    giveUp(new Error('KMS request timed out'));
    await expect(loading).rejects.toThrow('KMS request timed out');
    const taken = await svc.reveals.take('jti-hung', hung.revealId);
    expect(taken?.token).toMatch(TOKEN_RE);
    expect(taken?.name).toBe('kms-hung');
  });

  test('sign out revokes the session on every replica: a copied cookie → sign-in redirect / 401', async () => {
    const admin = await session();
    const keep = await session(); // another session of the same person stays valid
    await request(replicaApp).get('/admin/status').set('Cookie', as(admin.token)).expect(200);
    const out = await request(app).post('/admin/logout').set('Cookie', as(admin.token)).type('form').send({ csrf: admin.session.csrf }).expect(200);
    expect(String(out.headers['set-cookie'])).toMatch(/cs_admin=; .*Max-Age=0/);

    for (const a of [app, replicaApp]) {
      await request(a).get('/admin/status').set('Cookie', as(admin.token)).expect(303).expect('Location', '/admin/login');
      const post = await request(a).post('/admin/tokens').set('Cookie', as(admin.token)).type('form').send({ csrf: admin.session.csrf, name: 'after-logout', scope: 'scim' }).expect(401);
      expect(post.text).toContain('signed out');
    }
    expect(await ctx.store.repos.manager.count(ApiTokenEntity, { where: { name: 'after-logout' } })).toBe(0);
    await request(replicaApp).get('/admin/status').set('Cookie', as(keep.token)).expect(200);
    // Signing out twice with the same copy changes nothing (the copy is refused before it gets there).
    await request(app).post('/admin/logout').set('Cookie', as(admin.token)).type('form').send({ csrf: admin.session.csrf }).expect(401);
    const events = await ctx.store.repos.audit.recent(10, { action: 'admin.logout' });
    expect(events).toHaveLength(1);
  });

  test('revocations are kept until the session would have expired, then pruned', async () => {
    const revocations = new SessionRevocations(ctx.store);
    await revocations.revoke('old-session', Date.now() - 1_000);
    expect(await revocations.isRevoked('old-session')).toBe(true);
    await revocations.revoke('new-session', Date.now() + 60_000);
    await revocations.revoke('new-session', Date.now() + 60_000); // twice: no error, one row
    expect(await revocations.isRevoked('old-session')).toBe(false);
    expect(await revocations.isRevoked('new-session')).toBe(true);
    expect(await revocations.isRevoked('never-revoked')).toBe(false);
  });
});
