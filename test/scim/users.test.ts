import { entraCreateUser } from './idp-bodies';
import request from 'supertest';
import { scimContext, newUser, PATCH, USER_SCHEMA, type ScimTestContext } from './support';
import { UserEntity, UserKeysEntity } from '../../entities';

const KEYS = 'urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:UserKeys';

describe.each(['sqlite', 'postgres', 'mariadb'] as const)('SCIM /Users on %s', (db) => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext(db);
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  const countUsers = () => ctx.store.dataSource.manager.count(UserEntity);

  it('honours attributes/excludedAttributes on create (Location still names the new resource)', async () => {
    const res = await ctx.post('/Users?attributes=userName', newUser('projected@example.com')).expect(201);
    expect(res.body).toMatchObject({ id: expect.any(String), userName: 'projected@example.com' });
    expect(res.body.emails).toBeUndefined();
    expect(res.headers.location).toMatch(new RegExp(`/scim/v2/Users/${res.body.id}$`));
    const g = await ctx.post('/Groups?excludedAttributes=meta', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Projected' }).expect(201);
    expect(g.headers.location).toMatch(new RegExp(`/scim/v2/Groups/${g.body.id}$`));
    expect(g.body.meta).toBeUndefined();
  });

  it('creates a user with keys in one go and returns only encrypted/public forms', async () => {
    const res = await ctx.post('/Users', newUser('alice@example.com', { externalId: 'ext-alice' })).expect(201);
    expect(res.headers['content-type']).toMatch(/^application\/scim\+json/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.location).toMatch(new RegExp(`/scim/v2/Users/${res.body.id}$`));
    expect(res.body).toMatchObject({ userName: 'alice@example.com', externalId: 'ext-alice', active: true, meta: { resourceType: 'User' } });
    expect(res.body.schemas).toEqual(expect.arrayContaining([USER_SCHEMA, KEYS]));
    const k = res.body[KEYS];
    expect(k.keyAlgorithm).toBe('ec-p256');
    expect(JSON.parse(k.publicKeyJwk)).toMatchObject({ kty: 'EC', crv: 'P-256' });
    expect(JSON.parse(k.publicKeyJwk).d).toBeUndefined();
    expect(k.encryptedPrivateKey.split('.')).toHaveLength(5);
    expect(k.wrappedPasswordKey).toEqual(expect.any(String));
    expect(k.kekUri).toMatch(/^local:/);
    const keys = await ctx.store.dataSource.manager.findOneBy(UserKeysEntity, { userId: res.body.id });
    expect(keys?.privateJwe).toBe(k.encryptedPrivateKey);
    // GET returns the same resource.
    const got = await ctx.get(`/Users/${res.body.id}`).expect(200);
    expect(got.body[KEYS]).toEqual(k);
    expect(got.body.name).toEqual({ givenName: 'Given', familyName: 'Family' });
  });

  it('401 with WWW-Authenticate without, or with a wrong or revoked, token; nothing written', async () => {
    const before = await countUsers();
    const none = await request(ctx.app).post('/scim/v2/Users').send(newUser('x@example.com')).expect(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(none.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '401' });
    const wrongSecret = ctx.token.slice(0, -4) + 'AAAA';
    await request(ctx.app).get('/scim/v2/Users').set('Authorization', `Bearer ${wrongSecret}`).expect(401);
    await request(ctx.app).get('/scim/v2/Users').set('Authorization', 'Basic dXNlcjpwYXNz').expect(401);
    const { token, info } = await ctx.tokens.create({ name: 'temp', scope: 'scim' });
    await request(ctx.app).get('/scim/v2/ServiceProviderConfig').set('Authorization', `Bearer ${token}`).expect(200);
    expect((await ctx.tokens.revoke(info.id)).revoked).toEqual([info.id]);
    await request(ctx.app).get('/scim/v2/ServiceProviderConfig').set('Authorization', `Bearer ${token}`).expect(401);
    expect(await countUsers()).toBe(before);
  });

  it('409 uniqueness on duplicate userName (any case) and externalId', async () => {
    await ctx.post('/Users', newUser('bob@example.com', { externalId: 'ext-bob' })).expect(201);
    const dup = await ctx.post('/Users', newUser('BOB@example.com')).expect(409);
    expect(dup.body).toMatchObject({ status: '409', scimType: 'uniqueness' });
    const dupExt = await ctx.post('/Users', newUser('bob2@example.com', { externalId: 'ext-bob' })).expect(409);
    expect(dupExt.body.scimType).toBe('uniqueness');
  });

  it('concurrent creates of one userName: exactly one 201, the rest 409', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, () => ctx.post('/Users', newUser('race@example.com'))));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    for (const r of results.filter((x) => x.status === 409)) expect(r.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '409', scimType: 'uniqueness' });
    const list = await ctx.get('/Users?filter=' + encodeURIComponent('userName eq "race@example.com"')).expect(200);
    expect(list.body.totalResults).toBe(1);
  });

  // Microsoft Entra ID's own create body (idp-bodies.ts), with the race's userName and externalId.
  it('concurrent creates of one externalId: one 201, the rest 409; one user, its keys and one audit event', async () => {
    const results = await Promise.all(['r1', 'r2', 'r3', 'r4'].map((n) => ctx.post('/Users', entraCreateUser(`${n}-ext-race@example.com`, 'ext-race'))));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
    for (const r of results.filter((x) => x.status === 409)) expect(r.body).toMatchObject({ status: '409', scimType: 'uniqueness' });
    const id = String(results.find((r) => r.status === 201)!.body.id);
    expect(await ctx.store.dataSource.manager.count(UserEntity, { where: { externalId: 'ext-race' } })).toBe(1);
    expect(await ctx.store.dataSource.manager.count(UserKeysEntity, { where: { userId: id } })).toBe(1);
    const orphanKeys: unknown[] = await ctx.store.dataSource.query('SELECT user_id FROM user_keys WHERE user_id NOT IN (SELECT id FROM users)');
    expect(orphanKeys).toEqual([]);
    const audit = await ctx.store.repos.audit.recent(50, { action: 'user.provision' });
    expect(audit.filter((e) => e.outcome === 'success' && e.targetId !== null && results.some((r) => r.body.id === e.targetId))).toHaveLength(1);
  });

  it.each([
    ['malformed JSON', '{"userName": ', 400, 'invalidSyntax'],
    ['unknown attribute', JSON.stringify(newUser('u1@example.com', { shoeSize: 44 })), 400, 'invalidValue'],
    ['wrong type', JSON.stringify(newUser('u2@example.com', { active: 'maybe' })), 400, 'invalidValue'],
    ['missing userName', JSON.stringify({ schemas: [USER_SCHEMA], name: { givenName: 'x' } }), 400, 'invalidValue'],
    ['not an object', '[1,2]', 400, 'invalidSyntax'],
  ])('bad input (%s): 4xx in SCIM format, nothing written', async (_name, body, status, scimType) => {
    const before = await countUsers();
    const res = await request(ctx.app)
      .post('/scim/v2/Users')
      .set('Authorization', `Bearer ${ctx.token}`)
      .set('Content-Type', 'application/scim+json')
      .send(body)
      .expect(status);
    expect(res.headers['content-type']).toMatch(/^application\/scim\+json/);
    expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: String(status), scimType });
    expect(await countUsers()).toBe(before);
  });

  it('PUT replaces profile attributes; read-only fields in the body are ignored (Okta full-object PUT)', async () => {
    const created = (await ctx.post('/Users', newUser('carol@example.com')).expect(201)).body;
    const put = await ctx
      .put(`/Users/${created.id}`, {
        ...created,
        displayName: 'Carol C',
        name: { givenName: 'Carol', familyName: 'C' },
        password: 'Secret123!',
        groups: [],
        meta: { ...created.meta, created: '1999-01-01T00:00:00Z' },
        [KEYS]: { ...created[KEYS], kekUri: 'local://evil' },
      })
      .expect(200);
    expect(put.body).toMatchObject({ id: created.id, displayName: 'Carol C', name: { givenName: 'Carol', familyName: 'C' } });
    expect(put.body[KEYS]).toEqual(created[KEYS]);
    expect(put.body.meta.created).toBe(created.meta.created);
    expect(put.body.password).toBeUndefined();
    const row = await ctx.store.dataSource.manager.findOneBy(UserEntity, { id: created.id });
    expect(row?.scimAttributes).not.toContain('Secret123');
  });

  it('PATCH deactivates (blocking key operations) and reactivates', async () => {
    const created = (await ctx.post('/Users', newUser('dave@example.com')).expect(201)).body;
    const off = await ctx.patch(`/Users/${created.id}`, { schemas: [PATCH], Operations: [{ op: 'Replace', path: 'active', value: 'False' }] }).expect(200);
    expect(off.body.active).toBe(false);
    await expect(ctx.keys.unwrapPasswordKey(created.id, { actor: 'test' })).rejects.toMatchObject({ code: 'user_inactive' });
    const on = await ctx.patch(`/Users/${created.id}`, { schemas: [PATCH], Operations: [{ op: 'replace', value: { active: true } }] }).expect(200);
    expect(on.body.active).toBe(true);
    const pk = await ctx.keys.unwrapPasswordKey(created.id, { actor: 'test' });
    expect(pk).toHaveLength(32);
    pk.fill(0);
  });

  it('PATCH errors: bad schema, unknown path, read-only extension, no target; nothing changes', async () => {
    const created = (await ctx.post('/Users', newUser('erin@example.com')).expect(201)).body;
    const bad = await ctx.patch(`/Users/${created.id}`, { schemas: ['urn:wrong'], Operations: [{ op: 'replace', path: 'active', value: false }] }).expect(400);
    expect(bad.body.scimType).toBe('invalidSyntax');
    const path = await ctx.patch(`/Users/${created.id}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: 'shoeSize', value: 1 }] }).expect(400);
    expect(path.body.scimType).toBe('invalidPath');
    const ro = await ctx.patch(`/Users/${created.id}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: `${KEYS}:kekUri`, value: 'x' }] }).expect(400);
    expect(ro.body.scimType).toBe('mutability');
    const noTarget = await ctx
      .patch(`/Users/${created.id}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: 'emails[value co "nomatch"].type', value: 'home' }] })
      .expect(400);
    expect(noTarget.body.scimType).toBe('noTarget');
    const after = await ctx.get(`/Users/${created.id}`).expect(200);
    expect(after.body.meta.version).toBe(created.meta.version);
  });

  it('DELETE: 204, then 404; the userName is free again; key material is kept (default retention)', async () => {
    const created = (await ctx.post('/Users', newUser('frank@example.com', { externalId: 'ext-frank' })).expect(201)).body;
    await ctx.del(`/Users/${created.id}`).expect(204);
    const gone = await ctx.get(`/Users/${created.id}`).expect(404);
    expect(gone.body).toMatchObject({ status: '404' });
    await ctx.del(`/Users/${created.id}`).expect(404);
    expect(await ctx.store.dataSource.manager.findOneBy(UserKeysEntity, { userId: created.id })).not.toBeNull();
    await ctx.post('/Users', newUser('frank@example.com', { externalId: 'ext-frank' })).expect(201);
  });

  it('unknown ids and routes are SCIM 404s', async () => {
    const res = await ctx.get('/Users/00000000-0000-0000-0000-000000000000').expect(404);
    expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '404' });
    await ctx.get('/Nothing').expect(404);
  });
});
