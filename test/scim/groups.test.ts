import { scimContext, newUser, GROUP_SCHEMA, PATCH, type ScimTestContext } from './support';
import { GroupEntity, GroupMemberEntity } from '../../entities';

const GKEYS = 'urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:GroupKeys';

describe.each(['sqlite', 'postgres', 'mariadb'] as const)('SCIM /Groups on %s', (db) => {
  let ctx: ScimTestContext;
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    ctx = await scimContext(db);
    for (const n of ['ann', 'ben', 'cat', 'dan']) ids[n] = (await ctx.post('/Users', newUser(`${n}@example.com`)).expect(201)).body.id;
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  const memberRows = (groupId: string) => ctx.store.dataSource.manager.find(GroupMemberEntity, { where: { groupId }, order: { userId: 'ASC' } });

  it('creates a group with membership key, key pair and one JWE per member', async () => {
    const res = await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Engineering', externalId: 'g-eng', members: [{ value: ids.ann }, { value: ids.ben }] }).expect(201);
    expect(res.body).toMatchObject({ displayName: 'Engineering', externalId: 'g-eng', meta: { resourceType: 'Group' } });
    expect(res.body.members.map((m: { value: string }) => m.value).sort()).toEqual([ids.ann, ids.ben].sort());
    expect(res.body.members[0].display).toMatch(/@example\.com$/);
    const k = res.body[GKEYS];
    expect(JSON.parse(k.publicKeyJwk).kty).toBe('EC');
    expect(k.encryptedPrivateKey.split('.')).toHaveLength(5);
    expect(k.wrappedMembershipKey).toEqual(expect.any(String));
    expect(k.memberKeys).toBeUndefined(); // returned only on request
    const rows = await memberRows(res.body.id);
    expect(rows).toHaveLength(2);
    for (const r of rows) expect(r.memberJwe.split('.')).toHaveLength(5);
    // Users show their groups (read-only User.groups).
    const ann = await ctx.get(`/Users/${ids.ann}`).expect(200);
    expect(ann.body.groups).toEqual([expect.objectContaining({ value: res.body.id, display: 'Engineering', type: 'direct' })]);
    const listed = await ctx.get(`/Users?filter=${encodeURIComponent(`id eq "${ids.ben}"`)}`).expect(200);
    expect(listed.body.Resources[0].groups.map((g: { value: string }) => g.value)).toEqual([res.body.id]);
    const ro = await ctx.patch(`/Users/${ids.ann}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: 'groups', value: [] }] }).expect(400);
    expect(ro.body.scimType).toBe('mutability');
    const withKeys = await ctx.get(`/Groups/${res.body.id}?attributes=${GKEYS}:memberKeys,displayName`).expect(200);
    expect(withKeys.body[GKEYS].memberKeys).toHaveLength(2);
    expect(withKeys.body[GKEYS].memberKeys[0].jwe.split('.')).toHaveLength(5);
  });

  it('Okta group push: rename and membership changes in one PATCH, keys follow', async () => {
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Sales', members: [{ value: ids.ann }, { value: ids.ben }] }).expect(201)).body;
    const res = await ctx
      .patch(`/Groups/${g.id}`, {
        schemas: [PATCH],
        Operations: [
          { op: 'replace', value: { id: g.id, displayName: 'Sales EMEA' } },
          { op: 'add', path: 'members', value: [{ value: ids.cat, display: 'cat' }] },
          { op: 'remove', path: `members[value eq "${ids.ann}"]` },
        ],
      })
      .expect(204);
    expect(res.body).toEqual({});
    expect((await ctx.get(`/Groups/${g.id}`).expect(200)).body.displayName).toBe('Sales EMEA');
    expect((await memberRows(g.id)).map((r) => r.userId).sort()).toEqual([ids.ben, ids.cat].sort());
  });

  it('Entra: member removal by value array, excludedAttributes=members, filter on id and members', async () => {
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Ops', members: [{ value: ids.ann }, { value: ids.ben }, { value: ids.cat }] }).expect(201)).body;
    await ctx.patch(`/Groups/${g.id}`, { schemas: [PATCH], Operations: [{ op: 'Remove', path: 'members', value: [{ value: ids.ann }, { value: ids.cat }] }] }).expect(204);
    expect((await memberRows(g.id)).map((r) => r.userId)).toEqual([ids.ben]);
    const noMembers = await ctx.get(`/Groups/${g.id}?excludedAttributes=members`).expect(200);
    expect(noMembers.body.members).toBeUndefined();
    expect(noMembers.body.displayName).toBe('Ops');
    const hit = await ctx.get(`/Groups?filter=${encodeURIComponent(`id eq "${g.id}" and members[value eq "${ids.ben}"]`)}&excludedAttributes=members`).expect(200);
    expect(hit.body.totalResults).toBe(1);
    const miss = await ctx.get(`/Groups?filter=${encodeURIComponent(`id eq "${g.id}" and members[value eq "${ids.ann}"]`)}&excludedAttributes=members`).expect(200);
    expect(miss.body).toMatchObject({ totalResults: 0, Resources: [] });
    const byName = await ctx.get(`/Groups?filter=${encodeURIComponent('displayName eq "ops"')}`).expect(200);
    expect(byName.body.Resources.map((r: { id: string }) => r.id)).toEqual([g.id]);
  });

  it('409 on duplicate displayName (case-insensitive), also under concurrency', async () => {
    await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Legal' }).expect(201);
    const dup = await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'LEGAL' }).expect(409);
    expect(dup.body).toMatchObject({ status: '409', scimType: 'uniqueness' });
    const results = await Promise.all(Array.from({ length: 4 }, () => ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Race' })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
  });

  it('concurrent membership PATCHes on one group lose no update (row lock per group)', async () => {
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Busy' }).expect(201)).body;
    const results = await Promise.all(
      [ids.ann, ids.ben, ids.cat, ids.dan].map((u) => ctx.patch(`/Groups/${g.id}`, { schemas: [PATCH], Operations: [{ op: 'add', path: 'members', value: [{ value: u }] }] })),
    );
    expect(results.map((r) => r.status)).toEqual([204, 204, 204, 204]);
    expect((await memberRows(g.id)).map((r) => r.userId).sort()).toEqual([ids.ann, ids.ben, ids.cat, ids.dan].sort());
  });

  it('unknown member: 400 invalidValue, nothing written', async () => {
    const before = await ctx.store.dataSource.manager.count(GroupEntity);
    const res = await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Ghosts', members: [{ value: 'no-such-user' }] }).expect(400);
    expect(res.body.scimType).toBe('invalidValue');
    expect(await ctx.store.dataSource.manager.count(GroupEntity)).toBe(before);
  });

  it('PUT replaces members; DELETE removes the group and its member keys', async () => {
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Temp', members: [{ value: ids.ann }] }).expect(201)).body;
    await ctx.put(`/Groups/${g.id}`, { schemas: [GROUP_SCHEMA], displayName: 'Temp', members: [{ value: ids.dan }] }).expect(200);
    expect((await memberRows(g.id)).map((r) => r.userId)).toEqual([ids.dan]);
    await ctx.del(`/Groups/${g.id}`).expect(204);
    await ctx.get(`/Groups/${g.id}`).expect(404);
    expect(await memberRows(g.id)).toEqual([]);
  });
});
