import { testDatabaseNames } from '../support/databases';
import { GROUP_SCHEMA, newUser, scimContext, type ScimTestContext } from '../scim/support';

/**
 * The backend migration on a database with groups: they keep their keys and members (SQLite
 * must not rebuild `groups`, whose foreign keys cascade), become IdP-managed, and the `down` runs.
 */
describe.each(testDatabaseNames())('backend migration (%s)', (kind) => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  test('existing groups keep keys and members and become origin scim; down and up again', async () => {
    const user = (await ctx.post('/Users', newUser('before-backend@example.com')).expect(201)).body.id;
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Before backend', members: [{ value: user }] }).expect(201)).body;
    const ds = ctx.store.dataSource;
    const qr = ds.createQueryRunner();
    try {
      for (let i = 0; i < 20 && (await qr.hasColumn('groups', 'origin')); i++) await ds.undoLastMigration({ transaction: 'each' });
      expect(await qr.hasColumn('groups', 'origin')).toBe(false);
      expect(await qr.hasColumn('api_tokens', 'allowed_addresses')).toBe(false);
      expect(await qr.hasTable('backend_idempotency_keys')).toBe(false);
    } finally {
      await qr.release();
    }
    expect(await ds.query('SELECT group_id FROM group_keys')).toHaveLength(1);
    await ds.runMigrations({ transaction: 'each' });
    expect(await ds.query('SELECT group_id FROM group_members')).toHaveLength(1);
    expect((await ctx.store.repos.groups.findById(g.id))?.origin).toBe('scim');
    const again = await ctx.get(`/Groups/${g.id}`).expect(200);
    expect(again.body.members.map((m: { value: string }) => m.value)).toEqual([user]);
  });
});
