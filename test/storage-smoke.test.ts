import { createTestContext, type TestContext } from './support/context';
import { testDatabaseNames } from './support/databases';

describe.each(testDatabaseNames())('smoke on %s', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => { ctx = await createTestContext(kind); });
  afterAll(async () => { await ctx?.cleanup(); });
  test('provision, conflict, bundle', async () => {
    const u = await ctx.keys.provisionUser({ userName: 'Alice@example.com' }, { actor: 't' });
    await expect(ctx.keys.provisionUser({ userName: 'alice@EXAMPLE.com' }, { actor: 't' })).rejects.toThrow(/already exists/);
    const b = await ctx.keys.getUserKeyBundle(u.id, { actor: 't' });
    expect(b.passwordKey.length).toBe(32);
    const g = await ctx.keys.provisionGroup({ displayName: 'G', memberIds: [u.id] }, { actor: 't' });
    expect((await ctx.keys.getUserKeyBundle(u.id, { actor: 't' })).groups[0].groupId).toBe(g.id);
  });
});
