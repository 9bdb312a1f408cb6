import { GROUP_SCHEMA, PATCH, newUser, scimContext, type ScimTestContext } from './support';
import { testDatabaseNames } from '../support/databases';
import { spyKmsTransactions } from '../support/kms-transaction-spy';

/**
 * Every group write does its KMS work (wrap for create and rotation, unwrap for member adds)
 * before its database transaction opens, so a slow or hung KMS never holds a pooled connection,
 * a row lock or SQLite's only connection (DESIGN.md property 7, issue 9 items 1–2).
 */
describe.each(testDatabaseNames())('group writes call the KMS outside any transaction (%s)', (kind) => {
  let ctx: ScimTestContext;
  let spy: ReturnType<typeof spyKmsTransactions>;

  beforeAll(async () => {
    ctx = await scimContext(kind);
    spy = spyKmsTransactions(ctx.kms, ctx.config.kms.kekUri, ctx.store);
  });
  afterAll(async () => {
    spy?.restore();
    await ctx?.cleanup();
  });
  beforeEach(() => {
    spy.reset();
  });

  const user = async (name: string): Promise<string> => (await ctx.post('/Users', newUser(`${name}@example.com`)).expect(201)).body.id;
  const members = async (groupId: string): Promise<string[]> =>
    ((await ctx.get(`/Groups/${groupId}`).expect(200)).body.members ?? []).map((m: { value: string }) => m.value).sort();

  test('create, member add, removal with rotation, PUT with changed members, user deletion: no KMS call inside a transaction', async () => {
    const [a, b, c, d] = [await user('otx-a'), await user('otx-b'), await user('otx-c'), await user('otx-d')];

    spy.reset();
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'OTX', members: [{ value: a }] }).expect(201)).body;
    expect(spy.calls).toEqual([{ call: 'wrap', inTransaction: false }]);

    spy.reset();
    await ctx.patch(`/Groups/${g.id}`, { schemas: [PATCH], Operations: [{ op: 'add', path: 'members', value: [{ value: b }, { value: c }] }] }).expect(204);
    expect(spy.calls).toEqual([{ call: 'unwrap', inTransaction: false }]);

    spy.reset();
    await ctx.patch(`/Groups/${g.id}`, { schemas: [PATCH], Operations: [{ op: 'remove', path: `members[value eq "${c}"]` }] }).expect(204);
    expect(spy.calls).toEqual([{ call: 'wrap', inTransaction: false }]); // the rotation

    spy.reset();
    await ctx.put(`/Groups/${g.id}`, { schemas: [GROUP_SCHEMA], displayName: 'OTX', members: [{ value: a }, { value: d }] }).expect(200);
    // d needs versions 1 and 2 (two unwraps); removing b rotates to version 3 (one wrap).
    expect(spy.calls.filter((s) => s.call === 'unwrap')).toHaveLength(2);
    expect(spy.calls.filter((s) => s.call === 'wrap')).toHaveLength(1);
    expect(spy.calls.every((s) => !s.inTransaction)).toBe(true);
    expect(await members(g.id)).toEqual([a, d].sort());

    spy.reset();
    await ctx.del(`/Users/${d}`).expect(204);
    expect(spy.calls).toEqual([{ call: 'wrap', inTransaction: false }]);
    expect(await members(g.id)).toEqual([a]);
    expect((await ctx.get(`/Groups/${g.id}`).expect(200)).body['urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:GroupKeys'].keyVersion).toBe(4);
  });

  test('12 concurrent PATCHes, each adding a different member to one group, all succeed', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await user(`conc-${i}`));
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Concurrent' }).expect(201)).body;
    const results = await Promise.all(
      ids.map((id) => ctx.patch(`/Groups/${g.id}`, { schemas: [PATCH], Operations: [{ op: 'add', path: 'members', value: [{ value: id }] }] })),
    );
    expect(results.map((r) => r.status)).toEqual(ids.map(() => 204));
    expect(await members(g.id)).toEqual([...ids].sort());
    expect(spy.calls.every((s) => !s.inTransaction)).toBe(true);
  });
});
