/** Body size limit, per-token rate limit shared through the database, and KMS outages. */
import request from 'supertest';
import { createApp } from '../../server/http/app';
import { KeyService } from '../../server/keys/key-service';
import { KmsUnavailableError } from '../../server/errors';
import { UserEntity, UserKeysEntity, AuditEventEntity, RateLimitEntity } from '../../entities';
import { SpyAdapter } from '../support/spy-kms';
import { scimContext, newUser, type ScimTestContext } from './support';

describe.each(['sqlite', 'postgres', 'mariadb'] as const)('SCIM limits and faults on %s', (db) => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext(db, { CS_SCIM_MAX_BODY_BYTES: '2048', CS_SCIM_RATE_LIMIT_PER_MINUTE: '5' });
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  it('413 for an oversized body, in SCIM format, nothing written', async () => {
    const before = await ctx.store.dataSource.manager.count(UserEntity);
    const { token } = await ctx.tokens.create({ name: 'big', scope: 'scim' });
    const res = await request(ctx.app)
      .post('/scim/v2/Users')
      .set('Authorization', `Bearer ${token}`)
      .set('Content-Type', 'application/scim+json')
      .send(JSON.stringify(newUser('big@example.com', { displayName: 'x'.repeat(4000) })))
      .expect(413);
    expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '413' });
    expect(await ctx.store.dataSource.manager.count(UserEntity)).toBe(before);
  });

  it('429 with Retry-After once a token exceeds its per-minute budget; other tokens unaffected; counters in the DB', async () => {
    const { token, info } = await ctx.tokens.create({ name: 'busy', scope: 'scim' });
    const call = (t: string) => request(ctx.app).get('/scim/v2/ServiceProviderConfig').set('Authorization', `Bearer ${t}`);
    const statuses: number[] = [];
    let limited: request.Response | undefined;
    for (let i = 0; i < 7; i++) {
      const r = await call(token);
      statuses.push(r.status);
      if (r.status === 429) limited ??= r;
    }
    // The budget is 5 a minute; a minute boundary inside the loop may reset it once.
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(5);
    expect(limited).toBeDefined();
    expect(limited!.body).toMatchObject({ status: '429' });
    const retryAfter = Number(limited!.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const rows = await ctx.store.dataSource.manager.findBy(RateLimitEntity, { bucket: `scim:${info.id}` });
    expect(rows.reduce((n, r) => n + r.hits, 0)).toBe(7);
    // A second app on the same database (another replica) sees the same counter.
    const replica = createApp(ctx);
    const other = await request(replica).get('/scim/v2/ServiceProviderConfig').set('Authorization', `Bearer ${token}`);
    if (rows.length === 1) expect(other.status).toBe(429);
    const fresh = await ctx.tokens.create({ name: 'calm', scope: 'scim' });
    await call(fresh.token).expect(200);
  });

  it('KMS outage during create: 503 with Retry-After, nothing written; the retry succeeds', async () => {
    const spy = new SpyAdapter();
    const keys = new KeyService(ctx.store, spy.registry(), { kekUri: 'local://shared', kekMode: 'shared', userKeyAlgorithm: 'ec-p256' });
    const app = createApp({ ...ctx, kms: spy.registry(), keys });
    const { token } = await ctx.tokens.create({ name: 'kms', scope: 'scim' });
    const post = () =>
      request(app).post('/scim/v2/Users').set('Authorization', `Bearer ${token}`).set('Content-Type', 'application/scim+json').send(JSON.stringify(newUser('kms@example.com')));
    const m = ctx.store.dataSource.manager;
    const [users, userKeys] = [await m.count(UserEntity), await m.count(UserKeysEntity)];
    spy.failNext = new KmsUnavailableError('injected outage', { retryAfter: 7 });
    const res = await post().expect(503);
    expect(res.headers['retry-after']).toBe('7');
    expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '503' });
    expect(JSON.stringify(res.body)).not.toContain('injected');
    expect([await m.count(UserEntity), await m.count(UserKeysEntity)]).toEqual([users, userKeys]);
    // The failure audit survives the rolled-back SCIM transaction (also on SQLite's one connection).
    const failures = await m.findBy(AuditEventEntity, { action: 'user.provision', outcome: 'failure' });
    expect(failures.length).toBeGreaterThanOrEqual(1);
    const ok = await post().expect(201);
    expect(ok.body.userName).toBe('kms@example.com');
  });

  it('KMS outage while adding a group member: 503, membership unchanged; the retry succeeds', async () => {
    const spy = new SpyAdapter();
    const keys = new KeyService(ctx.store, spy.registry(), { kekUri: 'local://shared', kekMode: 'shared', userKeyAlgorithm: 'ec-p256' });
    const app = createApp({ ...ctx, kms: spy.registry(), keys });
    // Two tokens: this context allows 5 requests a minute per token.
    const { token: setup } = await ctx.tokens.create({ name: 'kms-g-setup', scope: 'scim' });
    const { token } = await ctx.tokens.create({ name: 'kms-g', scope: 'scim' });
    const send = (method: 'post' | 'patch', path: string, body: unknown) =>
      request(app)[method](`/scim/v2${path}`).set('Authorization', `Bearer ${method === 'post' ? setup : token}`).set('Content-Type', 'application/scim+json').send(JSON.stringify(body));
    const a = (await send('post', '/Users', newUser('kms-a@example.com')).expect(201)).body.id;
    const b = (await send('post', '/Users', newUser('kms-b@example.com')).expect(201)).body.id;
    const g = (await send('post', '/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'KMS group', members: [{ value: a }] }).expect(201)).body;
    const add = { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'add', path: 'members', value: [{ value: b }] }, { op: 'replace', path: 'displayName', value: 'Renamed' }] };
    spy.failNext = new KmsUnavailableError('injected outage');
    const res = await send('patch', `/Groups/${g.id}`, add).expect(503);
    expect(res.headers['retry-after']).toBeDefined();
    const after = await request(app).get(`/scim/v2/Groups/${g.id}`).set('Authorization', `Bearer ${token}`).expect(200);
    expect(after.body.displayName).toBe('KMS group');
    expect(after.body.members.map((m: { value: string }) => m.value)).toEqual([a]);
    await send('patch', `/Groups/${g.id}`, add).expect(204);
    const ok = await request(app).get(`/scim/v2/Groups/${g.id}`).set('Authorization', `Bearer ${token}`).expect(200);
    expect(ok.body.displayName).toBe('Renamed');
    expect(ok.body.members.map((m: { value: string }) => m.value).sort()).toEqual([a, b].sort());
  });
});
