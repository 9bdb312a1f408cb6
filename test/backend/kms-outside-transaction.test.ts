import { testDatabaseNames } from '../support/databases';
import { spyKmsTransactions } from '../support/kms-transaction-spy';
import { backendContext, type BackendTestContext } from './support';

/** Backend API writes call the KMS with no database transaction open (DESIGN.md property 7). */
describe.each(testDatabaseNames())('backend API KMS calls outside transactions (%s)', (kind) => {
  let ctx: BackendTestContext;
  let spy: ReturnType<typeof spyKmsTransactions>;
  beforeAll(async () => {
    ctx = await backendContext(kind);
    spy = spyKmsTransactions(ctx.kms, ctx.config.kms.kekUri, ctx.store);
  });
  afterAll(async () => {
    spy?.restore();
    await ctx?.cleanup();
  });

  test('user create, group create, member add, removal with rotation: every KMS call outside a transaction', async () => {
    const ids: string[] = [];
    for (const n of ['a', 'b', 'c']) ids.push((await ctx.backend.post('/users', { userName: `otx-${n}@example.com` }).expect(201)).body.id);
    expect(spy.calls).toEqual([1, 2, 3].map(() => ({ call: 'wrap', inTransaction: false })));
    spy.reset();
    const g = (await ctx.backend.post('/groups', { name: 'OTX', members: [{ id: ids[0] }] }).expect(201)).body;
    expect(spy.calls).toEqual([{ call: 'wrap', inTransaction: false }]);
    spy.reset();
    await ctx.backend.patch(`/groups/${g.id}`, { add: [{ id: ids[1] }, { id: ids[2] }] }).expect(200);
    expect(spy.calls).toEqual([{ call: 'unwrap', inTransaction: false }]);
    spy.reset();
    await ctx.backend.patch(`/groups/${g.id}`, { remove: [{ id: ids[2] }] }).expect(200);
    expect(spy.calls).toEqual([{ call: 'wrap', inTransaction: false }]);
  });
});
