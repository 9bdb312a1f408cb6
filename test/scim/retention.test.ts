/** Deleting a user: gone from SCIM at once; key material kept for CS_USER_DELETE_RETENTION_DAYS, then purged. */
import { UserEntity, UserKeysEntity } from '../../entities';
import { scimServiceFor } from '../../scim/router';
import { scimContext, newUser, GROUP_SCHEMA, type ScimTestContext } from './support';

describe.each(['sqlite', 'postgres', 'mariadb'] as const)('user deletion retention on %s', (db) => {
  let immediate: ScimTestContext;
  let days: ScimTestContext;
  beforeAll(async () => {
    [immediate, days] = await Promise.all([scimContext(db, { CS_USER_DELETE_RETENTION_DAYS: '0' }), scimContext(db, { CS_USER_DELETE_RETENTION_DAYS: '30' })]);
  });
  afterAll(async () => {
    await immediate?.cleanup();
    await days?.cleanup();
  });

  it('retention 0: material removed with the delete, memberships too', async () => {
    const u = (await immediate.post('/Users', newUser('gone@example.com')).expect(201)).body;
    const g = (await immediate.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'G', members: [{ value: u.id }] }).expect(201)).body;
    await immediate.del(`/Users/${u.id}`).expect(204);
    const m = immediate.store.dataSource.manager;
    expect(await m.findOneBy(UserEntity, { id: u.id })).toBeNull();
    expect(await m.findOneBy(UserKeysEntity, { userId: u.id })).toBeNull();
    expect((await immediate.get(`/Groups/${g.id}`).expect(200)).body.members ?? []).toEqual([]);
  });

  it('retention 30 days: kept (and key operations blocked) until the period ends, then purged', async () => {
    const u = (await days.post('/Users', newUser('later@example.com')).expect(201)).body;
    const g = (await days.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Kept', members: [{ value: u.id }] }).expect(201)).body;
    await days.del(`/Users/${u.id}`).expect(204);
    // No longer a member in SCIM, though the encrypted membership key is kept with the rest.
    expect((await days.get(`/Groups/${g.id}`).expect(200)).body.members ?? []).toEqual([]);
    const check = await days.get(`/Groups?filter=${encodeURIComponent(`id eq "${g.id}" and members[value eq "${u.id}"]`)}`).expect(200);
    expect(check.body.totalResults).toBe(0);
    const m = days.store.dataSource.manager;
    expect(await m.findOneBy(UserKeysEntity, { userId: u.id })).not.toBeNull();
    await expect(days.keys.unwrapPasswordKey(u.id, { actor: 'test' })).rejects.toMatchObject({ status: 404 });
    const service = scimServiceFor(days);
    expect(await service.purgeExpiredUsers({ actor: 'test' }, new Date(Date.now() + 29 * 86_400_000))).toBe(0);
    expect(await service.purgeExpiredUsers({ actor: 'test' }, new Date(Date.now() + 31 * 86_400_000))).toBe(1);
    expect(await m.findOneBy(UserKeysEntity, { userId: u.id })).toBeNull();
  });
});
