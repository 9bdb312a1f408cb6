import { createTestContext, type TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import { AdminQueries } from '../../admin/repository';

/**
 * CS_ADMIN_GROUP names a group the identity provider provisions. A group the cloud service
 * manages through the backend API (origin `app`) never grants the console, whether it is named
 * by its id or shares the display name.
 */
describe.each(testDatabaseNames())('administrators group origin on %s', (kind) => {
  let ctx: TestContext;
  let queries: AdminQueries;
  let scimGroup: string;
  let appGroup: string;
  let appTwin: string;
  beforeAll(async () => {
    ctx = await createTestContext(kind, {});
    queries = new AdminQueries(ctx.store);
    const alice = (await ctx.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' })).id;
    scimGroup = (await ctx.keys.provisionGroup({ displayName: 'Key Admins', memberIds: [alice] }, { actor: 'test' })).id;
    const provisionApp = (displayName: string) =>
      ctx.keys.groups.provision({ displayName, memberIds: [alice], origin: 'app' }, { actor: 'test' }, async (_tx, created) => created.id);
    appGroup = await provisionApp('Cloud Team');
    appTwin = await provisionApp('Key Admins');
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  test('a SCIM group grants by id and by display name (any case)', async () => {
    expect(await queries.anyGroupIs([scimGroup], scimGroup)).toBe(true);
    expect(await queries.anyGroupIs([scimGroup], 'key admins')).toBe(true);
  });

  test('a backend-managed group grants neither by id nor by a display name it shares', async () => {
    expect(await queries.anyGroupIs([appGroup], appGroup)).toBe(false);
    expect(await queries.anyGroupIs([appTwin], 'Key Admins')).toBe(false);
    expect(await queries.anyGroupIs([appGroup, appTwin], appTwin)).toBe(false);
  });

  test('no groups, or a group that is not among the user’s, grants nothing', async () => {
    expect(await queries.anyGroupIs([], scimGroup)).toBe(false);
    expect(await queries.anyGroupIs([appGroup], scimGroup)).toBe(false);
  });
});
