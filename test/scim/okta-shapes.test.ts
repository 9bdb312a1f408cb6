/**
 * Okta request shapes, sent as the bytes Okta's SCIM 2.0 reference prints (test/scim/idp-bodies.ts
 * cites it) — including without a Content-Type, as that page shows them and older Okta versions
 * send them — through the real app on every database. Discovery endpoints refuse writes with 405.
 */
import request from 'supertest';
import { GroupMemberEntity, UserEntity } from '../../entities';
import { OKTA_ADDED_ID, OKTA_CREATE_GROUP, OKTA_CREATE_USER, OKTA_GROUP_ID, OKTA_MEMBERSHIP, OKTA_REMOVED_ID, OKTA_RENAME_GROUP, OKTA_REPLACE_MEMBERS, withIds } from './idp-bodies';
import { GROUP_SCHEMA, newUser, scimContext, type ScimTestContext } from './support';

const GKEYS = 'urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:GroupKeys';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';

describe.each(['sqlite', 'postgres', 'mariadb'] as const)('Okta request shapes on %s', (db) => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext(db);
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  /** A raw body with the given Content-Type, or none at all (superagent labels strings, not Buffers). */
  const send = (method: 'post' | 'patch', path: string, body: string, contentType?: string) => {
    const req = request(ctx.app)[method](`/scim/v2${path}`).set('Authorization', `Bearer ${ctx.token}`);
    return contentType ? req.set('Content-Type', contentType).send(body) : req.send(Buffer.from(body, 'utf8'));
  };
  const countUsers = () => ctx.store.dataSource.manager.count(UserEntity);

  it('POST /Users with no Content-Type (as printed) is parsed as JSON; password and groups dropped', async () => {
    const res = await send('post', '/Users', OKTA_CREATE_USER).expect(201);
    expect((res as unknown as { req: { getHeader: (name: string) => unknown } }).req.getHeader('content-type')).toBeUndefined();
    expect(res.body).toMatchObject({ userName: 'test.user@okta.local', externalId: '00ujl29u0le5T6Aj10h7', displayName: 'Test User', locale: 'en-US', active: true });
    expect(res.body.password).toBeUndefined();
    const row = await ctx.store.dataSource.manager.findOneByOrFail(UserEntity, { id: res.body.id });
    expect(row.scimAttributes).not.toContain('1mz050nq');
  });

  it('text/plain whose body is JSON is parsed as JSON; a non-JSON body is 400 invalidSyntax, nothing written', async () => {
    const res = await send('post', '/Users', OKTA_CREATE_USER.replace('test.user@okta.local"', 'plain.user@okta.local"').replace('00ujl29u0le5T6Aj10h7', 'plain-ext'), 'text/plain; charset=utf-8').expect(201);
    expect(res.body.userName).toBe('plain.user@okta.local');
    const before = await countUsers();
    const bad = await send('post', '/Users', 'userName=x', 'text/plain').expect(400);
    expect(bad.body).toMatchObject({ schemas: [ERROR], status: '400', scimType: 'invalidSyntax' });
    const form = await send('post', '/Users', 'userName=x', 'application/x-www-form-urlencoded').expect(400);
    expect(form.body).toMatchObject({ schemas: [ERROR], status: '400' });
    expect(await countUsers()).toBe(before);
  });

  it('group push: create, then remove one member by filter and add another in one PATCH; keys follow', async () => {
    const [stay, leave, join] = await Promise.all(['stay', 'leave', 'join'].map(async (n) => (await ctx.post('/Users', newUser(`${n}@okta.local`)).expect(201)).body.id as string));
    const created = await send('post', '/Groups', OKTA_CREATE_GROUP).expect(201);
    const g = created.body.id as string;
    await ctx.patch(`/Groups/${g}`, { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'add', path: 'members', value: [{ value: stay }, { value: leave }] }] }).expect(204);
    await send('patch', `/Groups/${g}`, withIds(OKTA_MEMBERSHIP, { [OKTA_REMOVED_ID]: leave, [OKTA_ADDED_ID]: join }), 'application/scim+json').expect(204);
    const res = await ctx.get(`/Groups/${g}?attributes=members,${GKEYS}:memberKeys`).expect(200);
    expect(res.body.members.map((m: { value: string }) => m.value).sort()).toEqual([stay, join].sort());
    expect(res.body[GKEYS].memberKeys.map((k: { value: string }) => k.value).sort()).toEqual([stay, join].sort());
    const rows = await ctx.store.dataSource.manager.find(GroupMemberEntity, { where: { groupId: g } });
    expect(rows.map((r) => r.userId).sort()).toEqual([stay, join].sort());
  });

  it('group push: the rename that carries the group\'s id, then a full push by replace of members', async () => {
    const [a, b, c] = await Promise.all(['push-a', 'push-b', 'push-c'].map(async (n) => (await ctx.post('/Users', newUser(`${n}@okta.local`)).expect(201)).body.id as string));
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Okta push', members: [{ value: c }] }).expect(201)).body.id as string;
    // Display names are unique: the create test above already holds Okta's "Test SCIMv2".
    const taken = (await ctx.get(`/Groups?filter=${encodeURIComponent('displayName eq "Test SCIMv2"')}`).expect(200)).body.Resources as { id: string }[];
    for (const t of taken) await ctx.del(`/Groups/${t.id}`).expect(204);
    await send('patch', `/Groups/${g}`, withIds(OKTA_RENAME_GROUP, { [OKTA_GROUP_ID]: g }), 'application/scim+json').expect(204);
    expect((await ctx.get(`/Groups/${g}`).expect(200)).body.displayName).toBe('Test SCIMv2');
    await send('patch', `/Groups/${g}`, withIds(OKTA_REPLACE_MEMBERS, { [OKTA_ADDED_ID]: a, [OKTA_REMOVED_ID]: b }), 'application/scim+json').expect(204);
    const res = await ctx.get(`/Groups/${g}?attributes=members,${GKEYS}:memberKeys`).expect(200);
    expect(res.body.members.map((m: { value: string }) => m.value).sort()).toEqual([a, b].sort());
    expect(res.body[GKEYS].memberKeys.map((k: { value: string }) => k.value).sort()).toEqual([a, b].sort());
  });

  it('a POST, PUT, PATCH or DELETE on a discovery endpoint is 405 with Allow, in the SCIM error format', async () => {
    for (const [method, path] of [
      ['post', '/ServiceProviderConfig'],
      ['put', '/Schemas'],
      ['patch', `/Schemas/${GROUP_SCHEMA}`],
      ['delete', '/ResourceTypes/User'],
      ['post', '/ResourceTypes'],
    ] as const) {
      const res = await request(ctx.app)[method](`/scim/v2${path}`).set('Authorization', `Bearer ${ctx.token}`).set('Content-Type', 'application/scim+json').send('{}').expect(405);
      expect(res.headers.allow).toBe('GET, HEAD');
      expect(res.headers['content-type']).toMatch(/^application\/scim\+json/);
      expect(res.body).toMatchObject({ schemas: [ERROR], status: '405', detail: expect.stringContaining('read-only') });
    }
    await ctx.get('/ServiceProviderConfig').expect(200);
  });
});
