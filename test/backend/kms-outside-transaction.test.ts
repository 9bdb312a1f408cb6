import { testDatabaseNames } from '../support/databases';
import { backendContext, type BackendTestContext } from './support';

/** Backend API writes call the KMS with no database transaction open (DESIGN.md property 7). */
describe.each(testDatabaseNames())('backend API KMS calls outside transactions (%s)', (kind) => {
  let ctx: BackendTestContext;
  let seen: { call: string; inTransaction: boolean }[] = [];
  let restore: () => void;
  beforeAll(async () => {
    ctx = await backendContext(kind);
    const adapter = ctx.kms.forUri(ctx.config.kms.kekUri);
    const wrap = adapter.wrap.bind(adapter);
    const unwrap = adapter.unwrap.bind(adapter);
    const w = jest.spyOn(adapter, 'wrap').mockImplementation(async (...args) => {
      seen.push({ call: 'wrap', inTransaction: ctx.store.inTransaction });
      return wrap(...args);
    });
    const u = jest.spyOn(adapter, 'unwrap').mockImplementation(async (...args) => {
      seen.push({ call: 'unwrap', inTransaction: ctx.store.inTransaction });
      return unwrap(...args);
    });
    restore = () => (w.mockRestore(), u.mockRestore());
  });
  afterAll(async () => {
    restore?.();
    await ctx?.cleanup();
  });

  test('user create, group create, member add, removal with rotation: every KMS call outside a transaction', async () => {
    const ids: string[] = [];
    for (const n of ['a', 'b', 'c']) ids.push((await ctx.backend.post('/users', { userName: `otx-${n}@example.com` }).expect(201)).body.id);
    expect(seen).toEqual([1, 2, 3].map(() => ({ call: 'wrap', inTransaction: false })));
    seen = [];
    const g = (await ctx.backend.post('/groups', { name: 'OTX', members: [{ id: ids[0] }] }).expect(201)).body;
    expect(seen).toEqual([{ call: 'wrap', inTransaction: false }]);
    seen = [];
    await ctx.backend.patch(`/groups/${g.id}`, { add: [{ id: ids[1] }, { id: ids[2] }] }).expect(200);
    expect(seen).toEqual([{ call: 'unwrap', inTransaction: false }]);
    seen = [];
    await ctx.backend.patch(`/groups/${g.id}`, { remove: [{ id: ids[2] }] }).expect(200);
    expect(seen).toEqual([{ call: 'wrap', inTransaction: false }]);
  });
});
