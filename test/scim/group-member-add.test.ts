import { ScimQueries } from '../../scim/repositories/scim-queries';
import { GroupsRepository, MembershipsRepository } from '../../server/repositories/groups';
import { testDatabaseNames } from '../support/databases';
import { GROUP_SCHEMA, PATCH, newUser, scimContext, type ScimTestContext } from './support';

/**
 * Adding a member costs O(added), not O(group) (issue 10): the PATCH reads the memberships it
 * names, never the group's whole member list — and with excludedAttributes=members (and no
 * webhook to send the whole group to) not even for the response.
 */
describe.each(testDatabaseNames())('member add reads only the members it names (%s)', (kind) => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  test('PATCH add with excludedAttributes=members never lists the group', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await ctx.post('/Users', newUser(`o-added-${i}@example.com`)).expect(201)).body.id);
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Big enough', members: ids.slice(0, 5).map((value) => ({ value })) }).expect(201)).body;
    const listAll = jest.spyOn(ScimQueries.prototype, 'members');
    const allIds = jest.spyOn(MembershipsRepository.prototype, 'memberIds');
    try {
      const res = await ctx
        .patch(`/Groups/${g.id}?excludedAttributes=members`, { schemas: [PATCH], Operations: [{ op: 'add', path: 'members', value: [{ value: ids[5] }] }] })
        .expect(200);
      expect(res.body.members).toBeUndefined();
      expect(listAll).not.toHaveBeenCalled();
      expect(allIds).not.toHaveBeenCalled();
    } finally {
      listAll.mockRestore();
      allIds.mockRestore();
    }
    expect(((await ctx.get(`/Groups/${g.id}`).expect(200)).body.members as unknown[]).length).toBe(6);
  });

  test('a group that changes under every attempt: bounded retries, then 503 with Retry-After in the SCIM error format, nothing written', async () => {
    const a = (await ctx.post('/Users', newUser('busy-a@example.com')).expect(201)).body.id as string;
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Busy' }).expect(201)).body;
    const real = GroupsRepository.prototype.findKeys;
    let reads = 0;
    // Every read sees a newer key version than the one before: each prepared attempt is overtaken.
    const spy = jest.spyOn(GroupsRepository.prototype, 'findKeys').mockImplementation(async function (this: GroupsRepository, id: string) {
      const k = await real.call(this, id);
      return k && { ...k, keyVersion: k.keyVersion + ++reads };
    });
    try {
      const res = await ctx.patch(`/Groups/${g.id}`, { schemas: [PATCH], Operations: [{ op: 'add', path: 'members', value: [{ value: a }] }] });
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(res.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '503' });
      expect(res.body.detail).toMatch(/being changed by other requests; retry/);
      expect(reads).toBe(10); // one attempt, then 4 in turn with rotations: each a prepare and a commit read
    } finally {
      spy.mockRestore();
    }
    expect((await ctx.get(`/Groups/${g.id}`).expect(200)).body.members ?? []).toEqual([]);
  });
});
