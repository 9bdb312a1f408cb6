import { newUser, scimContext, type ScimTestContext } from './support';

/**
 * A SCIM create generates and KMS-wraps keys before its database transaction opens: a slow
 * cloud KMS must not hold a pooled connection (or SQLite's only one) for the length of its call.
 */
describe.each(['sqlite', 'postgres', 'mariadb'] as const)('SCIM create calls the KMS outside any transaction (%s)', (kind) => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  test('every wrap of a user create happens with no transaction open', async () => {
    const adapter = ctx.kms.forUri(ctx.config.kms.kekUri);
    const original = adapter.wrap.bind(adapter);
    const seen: boolean[] = [];
    const spy = jest.spyOn(adapter, 'wrap').mockImplementation(async (...args) => {
      seen.push(ctx.store.inTransaction);
      return original(...args);
    });
    try {
      const res = await ctx.post('/Users', newUser('outside@example.com'));
      expect(res.status).toBe(201);
      expect(seen).toEqual([false]);
    } finally {
      spy.mockRestore();
    }
  });
});
