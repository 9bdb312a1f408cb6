import { OutboxEntity } from '../../entities/scim';
import { GroupMemberKeyEntity } from '../../entities';
import { newWebhookSecret } from '../../scim/outbox/signature';
import { testDatabaseNames } from '../support/databases';
import { ENTRA_REMOVE_MEMBER, OKTA_MEMBERSHIP, withIds } from './idp-bodies';
import { GROUP_SCHEMA, PATCH, newUser, scimContext, type ScimTestContext } from './support';

const GKEYS = 'urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:GroupKeys';

/** Rekey on member removal through SCIM, as Okta and Entra ID send it; every rotation reaches the webhook outbox. */
describe.each(testDatabaseNames())('SCIM group rekey (%s)', (kind) => {
  let ctx: ScimTestContext;
  const u: Record<string, string> = {};
  beforeAll(async () => {
    ctx = await scimContext(kind, { CS_WEBHOOK_URL: 'http://127.0.0.1:9/unreachable', CS_WEBHOOK_SECRET: newWebhookSecret() });
    for (const n of ['a', 'b', 'c', 'd']) u[n] = (await ctx.post('/Users', newUser(`rekey-${n}@example.com`)).expect(201)).body.id;
  });
  afterAll(async () => ctx?.cleanup());

  const rotations = async (groupId: string) =>
    (await ctx.store.dataSource.manager.find(OutboxEntity, { where: { resource_id: groupId, event_type: 'group.key.rotated' }, order: { seq: 'ASC' } })).map(
      (e) => JSON.parse(e.payload).data as Record<string, unknown>,
    );
  const memberIds = (res: { body: { members?: { value: string }[] } }) => (res.body.members ?? []).map((m) => m.value).sort();

  test('Okta and Entra removals rotate; the resource shows the version; each rotation is an outbox event with the new public key', async () => {
    const created = await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Rekey SCIM', members: [{ value: u.a }, { value: u.b }, { value: u.c }] }).expect(201);
    const id = created.body.id as string;
    expect(created.body[GKEYS].keyVersion).toBe(1);

    // Okta: remove b and add d in one request → one rotation.
    await ctx.patch(`/Groups/${id}`, JSON.parse(withIds(OKTA_MEMBERSHIP, { '89bb1940-b905-4575-9e7f-6f887cfb368e': u.b, '23a35c27-23d3-4c03-b4c5-6443c09e7173': u.d }))).expect(204);
    const okta = await ctx.get(`/Groups/${id}`).expect(200);
    expect(memberIds(okta)).toEqual([u.a, u.c, u.d].sort());
    expect(okta.body[GKEYS].keyVersion).toBe(2);
    expect(okta.body[GKEYS].publicKeyJwk).not.toBe(created.body[GKEYS].publicKeyJwk);
    let events = await rotations(id);
    expect(events).toEqual([{ id, keyVersion: 2, keyAlgorithm: 'ec-p256', publicKeyJwk: okta.body[GKEYS].publicKeyJwk, kekUri: okta.body[GKEYS].kekUri }]);
    expect(JSON.stringify(events)).not.toMatch(/"d"/); // no private key material

    // Entra ID: remove c by value, `$ref: null` beside it.
    await ctx.patch(`/Groups/${id}`, JSON.parse(withIds(ENTRA_REMOVE_MEMBER, { f648f8d5ea4e4cd38e9c: u.c }))).expect(204);
    const entra = await ctx.get(`/Groups/${id}`).expect(200);
    expect(memberIds(entra)).toEqual([u.a, u.d].sort());
    expect(entra.body[GKEYS].keyVersion).toBe(3);

    // An add never rotates; removing someone who is not a member does not either.
    await ctx.patch(`/Groups/${id}`, { schemas: [PATCH], Operations: [{ op: 'add', path: 'members', value: [{ value: u.b }] }] }).expect(204);
    expect((await ctx.get(`/Groups/${id}`).expect(200)).body[GKEYS].keyVersion).toBe(3);
    await ctx.patch(`/Groups/${id}`, { schemas: [PATCH], Operations: [{ op: 'remove', path: `members[value eq "${u.c}"]` }] }).expect(204);
    expect((await ctx.get(`/Groups/${id}`).expect(200)).body[GKEYS].keyVersion).toBe(3);

    // PUT with fewer members rotates; the same members again do not.
    const put = await ctx.put(`/Groups/${id}`, { schemas: [GROUP_SCHEMA], displayName: 'Rekey SCIM', members: [{ value: u.a }] }).expect(200);
    expect(memberIds(put)).toEqual([u.a]);
    expect(put.body[GKEYS].keyVersion).toBe(4);
    await ctx.put(`/Groups/${id}`, { schemas: [GROUP_SCHEMA], displayName: 'Rekey SCIM', members: [{ value: u.a }] }).expect(200);
    events = await rotations(id);
    expect(events.map((e) => e.keyVersion)).toEqual([2, 3, 4]);
    expect((await ctx.get(`/Groups/${id}`).expect(200)).body[GKEYS].keyVersion).toBe(4);
  });

  test('deleting a user rotates every group they were in, once each, and sends the rotation', async () => {
    const x = (await ctx.post('/Users', newUser('rekey-leaver@example.com')).expect(201)).body.id as string;
    const g1 = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Leaver 1', members: [{ value: x }, { value: u.a }] }).expect(201)).body.id as string;
    const g2 = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Leaver 2', members: [{ value: x }] }).expect(201)).body.id as string;
    await ctx.del(`/Users/${x}`).expect(204);
    for (const g of [g1, g2]) {
      const res = await ctx.get(`/Groups/${g}`).expect(200);
      expect(memberIds(res)).not.toContain(x);
      expect(res.body[GKEYS].keyVersion).toBe(2);
      expect((await rotations(g)).map((e) => e.keyVersion)).toEqual([2]);
    }
  });

  test('6 concurrent removals and 6 concurrent adds on one group all succeed; the latest version is sealed to exactly the final members', async () => {
    const people: string[] = [];
    for (let i = 0; i < 12; i++) people.push((await ctx.post('/Users', newUser(`rekey-conc-${i}@example.com`)).expect(201)).body.id);
    const [stay, leave, join] = [people.slice(0, 3), people.slice(3, 9), people.slice(9)];
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Concurrent rekey', members: [...stay, ...leave].map((value) => ({ value })) }).expect(201)).body.id as string;
    const results = await Promise.all([
      ...leave.map((id) => ctx.patch(`/Groups/${g}`, { schemas: [PATCH], Operations: [{ op: 'remove', path: `members[value eq "${id}"]` }] })),
      ...join.map((id) => ctx.patch(`/Groups/${g}`, { schemas: [PATCH], Operations: [{ op: 'add', path: 'members', value: [{ value: id }] }] })),
    ]);
    expect(results.map((r) => r.status)).toEqual(people.slice(3).map(() => 204));
    const final = await ctx.get(`/Groups/${g}`).expect(200);
    expect(memberIds(final)).toEqual([...stay, ...join].sort());
    const version = final.body[GKEYS].keyVersion as number;
    expect(version).toBe(1 + leave.length); // one rotation per removal request
    const latest = await ctx.store.dataSource.manager.find(GroupMemberKeyEntity, { where: { groupId: g, version } });
    expect(latest.map((r) => r.userId).sort()).toEqual([...stay, ...join].sort());
    for (const id of leave) expect(await ctx.store.dataSource.manager.count(GroupMemberKeyEntity, { where: { groupId: g, userId: id } })).toBe(0);
    // Every member added holds every version.
    for (const id of join) expect(await ctx.store.dataSource.manager.count(GroupMemberKeyEntity, { where: { groupId: g, userId: id } })).toBeGreaterThanOrEqual(1);
    const counts = await Promise.all([...stay, ...join].map((id) => ctx.store.dataSource.manager.find(GroupMemberKeyEntity, { where: { groupId: g, userId: id } })));
    for (const rows of counts.slice(0, stay.length)) expect(rows.map((r) => r.version).sort((a, b) => a - b)).toEqual(Array.from({ length: version }, (_, i) => i + 1));
  });

  test('a PATCH asking excludedAttributes=members answers without members', async () => {
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'No members back', members: [{ value: u.a }] }).expect(201)).body.id as string;
    const res = await ctx.patch(`/Groups/${g}?excludedAttributes=members`, { schemas: [PATCH], Operations: [{ op: 'add', path: 'members', value: [{ value: u.b }] }] }).expect(200);
    expect(res.body.members).toBeUndefined();
    expect(res.body[GKEYS].keyVersion).toBe(1);
    expect(memberIds(await ctx.get(`/Groups/${g}`).expect(200))).toEqual([u.a, u.b].sort());
  });
});
