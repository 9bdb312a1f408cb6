import { ScimQueries } from '../../scim/repositories/scim-queries';
import { MembershipsRepository } from '../../server/repositories/groups';
import { openAsMember } from '../backend/open';
import { testDatabaseNames } from '../support/databases';
import { GROUP_SCHEMA, newUser, scimContext, type ScimTestContext } from './support';
import { ENTRA_ADD_MEMBER, ENTRA_FLAG_MEMBER_ID, ENTRA_MEMBER_ID, ENTRA_REMOVE_MEMBER_FLAG, withIds } from './idp-bodies';

const GKEYS = 'urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:GroupKeys';
// Entra ID's own bytes (idp-bodies.ts cites the tutorial), with our user ids in place of Microsoft's.
const add = (id: string) => JSON.parse(withIds(ENTRA_ADD_MEMBER, { [ENTRA_MEMBER_ID]: id })) as object;
const removeByFilter = (id: string) => JSON.parse(withIds(ENTRA_REMOVE_MEMBER_FLAG, { [ENTRA_FLAG_MEMBER_ID]: id })) as object;

/**
 * A successful PATCH /Groups answers 204 No Content unless the request asks for a representation
 * (attributes / excludedAttributes), so adding one member to a big group never reads or sends the
 * group's member list (issue 10). CS_SCIM_GROUP_PATCH_RESPONSE=resource answers 200 with the group.
 */
describe.each(testDatabaseNames())('PATCH /Groups response (%s)', (kind) => {
  let ctx: ScimTestContext;
  let ids: string[];
  beforeAll(async () => {
    ctx = await scimContext(kind);
    ids = [];
    for (let i = 0; i < 24; i++) ids.push((await ctx.post('/Users', newUser(`patch-resp-${i}@example.com`)).expect(201)).body.id);
  });
  afterAll(async () => ctx?.cleanup());

  const group = async (name: string, members: string[]) =>
    (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: name, members: members.map((value) => ({ value })) }).expect(201)).body.id as string;

  test('adding one member answers 204 without reading the member list; the member is added and can open the group key', async () => {
    const g = await group('Twenty', ids.slice(0, 20));
    const listAll = jest.spyOn(ScimQueries.prototype, 'members');
    const allIds = jest.spyOn(MembershipsRepository.prototype, 'memberIds');
    const findGroup = jest.spyOn(ScimQueries.prototype, 'findGroup');
    try {
      const res = await ctx.patch(`/Groups/${g}`, add(ids[20])).expect(204);
      expect(res.text).toBe('');
      expect(res.headers['content-type']).toBeUndefined();
      expect(res.headers['cache-control']).toBe('no-store');
      expect(listAll).not.toHaveBeenCalled();
      expect(allIds).not.toHaveBeenCalled();
      // Members only: the PATCH is applied once before the KMS work; the transaction re-plans just the membership.
      expect(findGroup).toHaveBeenCalledTimes(1);
    } finally {
      listAll.mockRestore();
      allIds.mockRestore();
      findGroup.mockRestore();
    }
    const after = (await ctx.get(`/Groups/${g}?attributes=members,${GKEYS}:memberKeys`).expect(200)).body;
    expect((after.members as { value: string }[]).map((m) => m.value).sort()).toEqual(ids.slice(0, 21).sort());
    const jwe = (id: string) => (after[GKEYS].memberKeys as { value: string; jwe: string }[]).find((k) => k.value === id)!.jwe;
    // The new member's JWE opens, as that member, to the same membership key an old member holds.
    const [mine, theirs] = [await openAsMember(ctx.keys, ids[20], jwe(ids[20])), await openAsMember(ctx.keys, ids[0], jwe(ids[0]))];
    expect(mine.equals(theirs)).toBe(true);
    await expect(openAsMember(ctx.keys, ids[21], jwe(ids[20]))).rejects.toThrow(); // nobody else's
  });

  test('a PATCH that changes nothing, and a removal with rotation, also answer 204', async () => {
    const g = await group('Unchanged', ids.slice(0, 3));
    await ctx.patch(`/Groups/${g}`, add(ids[0])).expect(204);
    await ctx.patch(`/Groups/${g}`, removeByFilter(ids[1])).expect(204);
    const after = (await ctx.get(`/Groups/${g}`).expect(200)).body;
    expect((after.members as { value: string }[]).map((m) => m.value).sort()).toEqual([ids[0], ids[2]].sort());
    expect(after[GKEYS].keyVersion).toBe(2);
  });

  test('attributes / excludedAttributes ask for the group: 200 with just what was asked', async () => {
    const g = await group('Asked', ids.slice(0, 2));
    const named = await ctx.patch(`/Groups/${g}?attributes=displayName`, add(ids[2])).expect(200);
    expect(named.type).toBe('application/scim+json');
    expect(named.body.displayName).toBe('Asked');
    expect(named.body.members).toBeUndefined();
    expect(named.body[GKEYS]).toBeUndefined();

    const excluded = await ctx.patch(`/Groups/${g}?excludedAttributes=members`, add(ids[3])).expect(200);
    expect(excluded.body.members).toBeUndefined();
    expect(excluded.body[GKEYS].keyVersion).toBe(1);

    const members = await ctx.patch(`/Groups/${g}?attributes=members`, add(ids[4])).expect(200);
    expect((members.body.members as { value: string }[]).map((m) => m.value).sort()).toEqual(ids.slice(0, 5).sort());

    // Nothing changed, representation asked for: still the group.
    const same = await ctx.patch(`/Groups/${g}?attributes=displayName`, add(ids[4])).expect(200);
    expect(same.body.displayName).toBe('Asked');
  });

  test('errors keep their status and SCIM format; nothing is written', async () => {
    const g = await group('Errors', ids.slice(0, 1));
    const missing = await ctx.patch('/Groups/00000000-0000-4000-8000-000000000000', add(ids[1])).expect(404);
    expect(missing.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '404' });
    const unknown = await ctx.patch(`/Groups/${g}`, add('no-such-user')).expect(400);
    expect(unknown.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '400', scimType: 'invalidValue' });
    expect(((await ctx.get(`/Groups/${g}`).expect(200)).body.members as { value: string }[]).map((m) => m.value)).toEqual([ids[0]]);
  });
});

describe.each(testDatabaseNames())('PATCH /Groups with CS_SCIM_GROUP_PATCH_RESPONSE=resource (%s)', (kind) => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext(kind, { CS_SCIM_GROUP_PATCH_RESPONSE: 'resource' });
  });
  afterAll(async () => ctx?.cleanup());

  test('answers 200 with the whole group, members included', async () => {
    const [a, b] = [(await ctx.post('/Users', newUser('res-a@example.com')).expect(201)).body.id, (await ctx.post('/Users', newUser('res-b@example.com')).expect(201)).body.id];
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Resource', members: [{ value: a }] }).expect(201)).body.id as string;
    const res = await ctx.patch(`/Groups/${g}`, add(b)).expect(200);
    expect(res.body).toMatchObject({ id: g, displayName: 'Resource' });
    expect((res.body.members as { value: string }[]).map((m) => m.value).sort()).toEqual([a, b].sort());
    expect(res.body[GKEYS].memberKeys).toBeUndefined(); // returned only on request, as before
  });
});
