/**
 * Microsoft Entra ID request shapes, sent as the bytes Microsoft's documentation prints
 * (test/scim/idp-bodies.ts cites each page), through the real app on every database.
 */
import request from 'supertest';
import { GroupMemberEntity, UserEntity } from '../../entities';
import {
  ENTRA_ADD_MANAGER,
  ENTRA_ADD_MEMBER,
  ENTRA_ADDRESS_AND_EMAIL,
  ENTRA_CREATE_GROUP,
  ENTRA_CREATE_USER,
  ENTRA_DISABLE_USER,
  ENTRA_DISABLE_USER_NO_FLAG,
  ENTRA_FLAG_MEMBER_ID,
  ENTRA_MANAGER_ID,
  ENTRA_MEMBER_ID,
  ENTRA_NO_FLAG_MEMBER_ID,
  ENTRA_PROVISION_USER,
  ENTRA_REMOVE_MEMBER,
  ENTRA_REMOVE_MEMBER_FLAG,
  ENTRA_REMOVE_MEMBER_NO_FLAG,
  ENTRA_REPLACE_MULTIPLE_FLAG,
  ENTRA_REPLACE_MULTIPLE_NO_FLAG,
  ENTRA_REPLACE_USERNAME,
  ENTRA_UPDATE_MULTI_VALUED,
  withIds,
} from './idp-bodies';
import { GROUP_SCHEMA, newUser, PATCH, scimContext, USER_SCHEMA, type ScimTestContext } from './support';

const GKEYS = 'urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:GroupKeys';
const ENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

describe.each(['sqlite', 'postgres', 'mariadb'] as const)('Entra ID request shapes on %s', (db) => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext(db);
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  /** Sends a body byte for byte, as Entra does (application/scim+json). */
  const send = (method: 'post' | 'put' | 'patch', path: string, body: string) =>
    request(ctx.app)[method](`/scim/v2${path}`).set('Authorization', `Bearer ${ctx.token}`).set('Content-Type', 'application/scim+json').send(body);
  const user = async (name: string, extra: Record<string, unknown> = {}) => (await ctx.post('/Users', newUser(`${name}@entra.example`, extra)).expect(201)).body.id as string;
  const group = async (name: string, members: string[]) =>
    (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: name, members: members.map((value) => ({ value })) }).expect(201)).body.id as string;
  /** Who the server says is a member, who it serves a membership JWE for, and who has a row. */
  const membership = async (groupId: string) => {
    const res = await ctx.get(`/Groups/${groupId}?attributes=members,${GKEYS}:memberKeys`).expect(200);
    const rows = await ctx.store.dataSource.manager.find(GroupMemberEntity, { where: { groupId } });
    return {
      members: ((res.body.members ?? []) as { value: string }[]).map((m) => m.value).sort(),
      jwes: ((res.body[GKEYS]?.memberKeys ?? []) as { value: string; jwe: string }[]).map((k) => k.value).sort(),
      rows: rows.map((r) => r.userId).sort(),
    };
  };

  it('the tutorial\'s user lifecycle: create, rename, disable', async () => {
    const created = await send('post', '/Users', ENTRA_CREATE_USER).expect(201);
    expect(created.body).toMatchObject({ userName: 'Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee', active: true, name: { formatted: 'givenName familyName' } });
    const id = created.body.id as string;
    const updated = await send('patch', `/Users/${id}`, ENTRA_UPDATE_MULTI_VALUED).expect(200);
    expect(updated.body.emails).toEqual([{ value: 'updatedEmail@microsoft.com', type: 'work', primary: true }]);
    expect(updated.body.name).toMatchObject({ givenName: 'givenName', familyName: 'updatedFamilyName' });
    const renamed = await send('patch', `/Users/${id}`, ENTRA_REPLACE_USERNAME).expect(200);
    expect(renamed.body.userName).toBe('5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com');
    const disabled = await send('patch', `/Users/${id}`, ENTRA_DISABLE_USER).expect(200);
    expect(disabled.body.active).toBe(false);
    expect((await ctx.store.dataSource.manager.findOneByOrFail(UserEntity, { id })).active).toBeFalsy();
  });

  it('the compatibility page\'s multi-attribute replace, without and with aadOptscim062020, and "False" for active', async () => {
    const id = await user('multi', { emails: [{ value: 'multi@entra.example', type: 'work', primary: true }] });
    const plain = await send('patch', `/Users/${id}`, ENTRA_REPLACE_MULTIPLE_NO_FLAG).expect(200);
    expect(plain.body).toMatchObject({ displayName: 'Pvlo', externalId: 'Eqpj', name: { givenName: 'Gtfd', familyName: 'Pkqf' }, [ENT]: { employeeNumber: 'Eqpj' } });
    expect(plain.body.emails).toEqual([{ value: 'TestBcwqnm@test.microsoft.com', type: 'work', primary: true }]);
    const flagged = await send('patch', `/Users/${id}`, ENTRA_REPLACE_MULTIPLE_FLAG).expect(200);
    expect(flagged.body).toMatchObject({ displayName: 'Bjfe', name: { givenName: 'Kkom', familyName: 'Unua' }, [ENT]: { employeeNumber: 'Aklq' } });
    expect(flagged.body.emails).toEqual([{ value: 'TestMhvaes@test.microsoft.com', type: 'work', primary: true }]);
    expect((await send('patch', `/Users/${id}`, ENTRA_DISABLE_USER_NO_FLAG).expect(200)).body.active).toBe(false);
    expect((await ctx.store.dataSource.manager.findOneByOrFail(UserEntity, { id })).active).toBeFalsy();
  });

  it('POST /Groups declaring the ADSCIM marker schema is accepted (marker dropped)', async () => {
    const res = await send('post', '/Groups', ENTRA_CREATE_GROUP).expect(201);
    expect(res.body).toMatchObject({ displayName: 'displayName', externalId: '8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159' });
    expect(res.body.schemas).toEqual(expect.arrayContaining([GROUP_SCHEMA]));
    expect(JSON.stringify(res.body.schemas)).not.toMatch(/ADSCIM/i);
  });

  it('member removal with {"$ref": null, "value": id} removes the member and stops serving their JWE', async () => {
    const [ann, ben] = [await user('ref-ann'), await user('ref-ben')];
    const g = await group('Entra ref', [ben]);
    await send('patch', `/Groups/${g}`, withIds(ENTRA_ADD_MEMBER, { [ENTRA_MEMBER_ID]: ann })).expect(204);
    expect(await membership(g)).toEqual({ members: [ann, ben].sort(), jwes: [ann, ben].sort(), rows: [ann, ben].sort() });

    await send('patch', `/Groups/${g}`, withIds(ENTRA_REMOVE_MEMBER, { [ENTRA_MEMBER_ID]: ann })).expect(204);
    expect(await membership(g)).toEqual({ members: [ben], jwes: [ben], rows: [ben] });
    const annNow = await ctx.get(`/Users/${ann}`).expect(200);
    expect((annNow.body.groups ?? []).map((x: { value: string }) => x.value)).not.toContain(g);
  });

  it('removal values carrying display, type or $ref match on value alone', async () => {
    const [a, b, c] = [await user('extra-a'), await user('extra-b'), await user('extra-c')];
    const g = await group('Entra extra', [a, b, c]);
    const body = {
      schemas: [PATCH],
      Operations: [{ op: 'Remove', path: 'members', value: [{ value: a, display: 'not the display name', type: 'User', $ref: `/scim/v2/Users/${a}` }, { value: b, display: 'x' }] }],
    };
    await ctx.patch(`/Groups/${g}`, body).expect(204);
    expect(await membership(g)).toEqual({ members: [c], jwes: [c], rows: [c] });
  });

  it('aadOptscim062020 removal by members[value eq "…"] and the default-mode value array both remove', async () => {
    const [a, b, c] = [await user('flag-a'), await user('flag-b'), await user('flag-c')];
    const g = await group('Entra flag', [a, b, c]);
    await send('patch', `/Groups/${g}`, withIds(ENTRA_REMOVE_MEMBER_FLAG, { [ENTRA_FLAG_MEMBER_ID]: a })).expect(204);
    expect(await membership(g)).toEqual({ members: [b, c].sort(), jwes: [b, c].sort(), rows: [b, c].sort() });
    await send('patch', `/Groups/${g}`, withIds(ENTRA_REMOVE_MEMBER_NO_FLAG, { [ENTRA_NO_FLAG_MEMBER_ID]: b })).expect(204);
    expect(await membership(g)).toEqual({ members: [c], jwes: [c], rows: [c] });
  });

  it('several ops on one new address and one new email make one element each, ops applied in order', async () => {
    const id = (await ctx.post('/Users', { schemas: [USER_SCHEMA], userName: 'addr@entra.example' }).expect(201)).body.id;
    const res = await send('patch', `/Users/${id}`, ENTRA_ADDRESS_AND_EMAIL).expect(200);
    expect(res.body.addresses).toEqual([
      { type: 'work', streetAddress: '1 Microsoft Way', locality: 'Redmond', postalCode: '98052', region: 'WA', country: 'US', formatted: 'Columbus', primary: true },
    ]);
    expect(res.body.emails).toEqual([{ type: 'work', value: 'joy@contoso.com', display: 'Joy Young', primary: true }]);
    // Stored that way, and the work email is the filterable one.
    expect((await ctx.get(`/Users/${id}`).expect(200)).body.addresses).toHaveLength(1);
    const found = await ctx.get(`/Users?filter=${encodeURIComponent('emails[type eq "work"].value eq "joy@contoso.com"')}`).expect(200);
    expect(found.body.Resources.map((r: { id: string }) => r.id)).toEqual([id]);
  });

  it('at most one primary value: a value made primary by PATCH clears the others (RFC 7644 §3.5.2)', async () => {
    const id = await user('primary', { emails: [{ value: 'home@entra.example', type: 'home', primary: true }] });
    const res = await ctx
      .patch(`/Users/${id}`, { schemas: [PATCH], Operations: [{ op: 'Add', path: 'emails', value: [{ value: 'work@entra.example', type: 'work', primary: 'True' }] }] })
      .expect(200);
    expect(res.body.emails).toEqual([
      { value: 'home@entra.example', type: 'home', primary: false },
      { value: 'work@entra.example', type: 'work', primary: true },
    ]);
    // Two primaries in one POST are refused rather than guessed at.
    const before = await ctx.store.dataSource.manager.count(UserEntity);
    const two = await ctx.post('/Users', newUser('two-primaries@entra.example', { emails: [{ value: 'a@x', primary: true }, { value: 'b@x', primary: true }] })).expect(400);
    expect(two.body).toMatchObject({ scimType: 'invalidValue', detail: expect.stringContaining('emails') });
    expect(await ctx.store.dataSource.manager.count(UserEntity)).toBe(before);
  });

  it('attribute names in PATCH paths are case-insensitive (RFC 7643 §2.1)', async () => {
    const id = await user('case');
    const res = await ctx
      .patch(`/Users/${id}`, {
        schemas: [PATCH],
        Operations: [
          { op: 'Replace', path: 'Title', value: 'Engineer' },
          { op: 'Replace', path: 'UserName', value: 'case-renamed@entra.example' },
          { op: 'Replace', path: 'Name.GivenName', value: 'Casey' },
          { op: 'Add', path: `${ENT}:Department`, value: 'R&D' },
          { op: 'Replace', value: { DisplayName: 'Casey C', 'NAME.familyName': 'Case' } },
          { op: 'Add', path: 'Emails', value: [{ Value: 'other@entra.example', Type: 'other' }] },
        ],
      })
      .expect(200);
    expect(res.body).toMatchObject({ title: 'Engineer', userName: 'case-renamed@entra.example', displayName: 'Casey C', name: { givenName: 'Casey', familyName: 'Case' } });
    expect(res.body[ENT]).toMatchObject({ department: 'R&D' });
    expect(res.body.emails).toContainEqual({ value: 'other@entra.example', type: 'other' });
    const row = await ctx.store.dataSource.manager.findOneByOrFail(UserEntity, { id });
    expect([row.userName, row.givenName, row.displayName]).toEqual(['case-renamed@entra.example', 'Casey', 'Casey C']);
  });

  it('attributes, excludedAttributes, sortBy and sortOrder in any case', async () => {
    for (const n of ['sort-b', 'sort-a', 'sort-c']) await user(n);
    const only = await ctx.get(`/Users?filter=${encodeURIComponent('userName sw "sort-"')}&Attributes=UserName,NAME.GivenName&SortBy=UserName&sortOrder=DESCENDING`).expect(200);
    expect(only.body.Resources.map((r: { userName: string }) => r.userName)).toEqual(['sort-c@entra.example', 'sort-b@entra.example', 'sort-a@entra.example']);
    expect(only.body.Resources[0]).toEqual({ schemas: expect.any(Array), id: expect.any(String), userName: 'sort-c@entra.example', name: { givenName: 'Given' } });
    const up = await ctx.get(`/Users?filter=${encodeURIComponent('userName sw "sort-"')}&sortBy=userName&sortOrder=Ascending&excludedAttributes=EMAILS,Name`).expect(200);
    expect(up.body.Resources.map((r: { userName: string }) => r.userName)).toEqual(['sort-a@entra.example', 'sort-b@entra.example', 'sort-c@entra.example']);
    expect(up.body.Resources[0].emails).toBeUndefined();
    expect(up.body.Resources[0].name).toBeUndefined();
    const bad = await ctx.get('/Users?sortOrder=sideways').expect(400);
    expect(bad.body.scimType).toBe('invalidValue');
  });

  it('null on multi-valued and other attributes is "unassigned" (POST and PUT)', async () => {
    const res = await send('post', '/Users', ENTRA_PROVISION_USER).expect(201);
    expect(res.body).toMatchObject({ userName: 'jyoung@testuser.com', externalId: 'jyoung', displayName: 'Joy Young', emails: [{ type: 'work', value: 'jyoung@Contoso.com', primary: true }] });
    for (const k of ['addresses', 'phoneNumbers', 'title', 'preferredLanguage']) expect(res.body[k]).toBeUndefined();
    const put = await ctx.put(`/Users/${res.body.id}`, { schemas: [USER_SCHEMA], userName: 'jyoung@testuser.com', emails: null, phoneNumbers: null, name: { givenName: 'Joy', familyName: null } }).expect(200);
    expect(put.body.emails).toBeUndefined();
    expect(put.body.name).toEqual({ givenName: 'Joy' });
    const row = await ctx.store.dataSource.manager.findOneByOrFail(UserEntity, { id: res.body.id });
    expect(row.email).toBeNull();
  });

  it('enterprise manager: bare `manager` path with [{"$ref", "value"}] or a string; filter manager eq "…"', async () => {
    const [boss, other, report] = [await user('boss'), await user('other-boss'), await user('report')];
    const res = await send('patch', `/Users/${report}`, withIds(ENTRA_ADD_MANAGER, { [ENTRA_MANAGER_ID]: boss })).expect(200);
    expect(res.body[ENT].manager).toEqual({ value: boss });
    const q = (f: string) => ctx.get(`/Users?filter=${encodeURIComponent(f)}&attributes=id`).expect(200);
    // Entra's check before it sets a manager (tutorial, Example 4): id and manager together.
    expect((await q(`id eq "${report}" and manager eq "${boss}"`)).body.totalResults).toBe(1);
    expect((await q(`id eq "${report}" and manager eq "${other}"`)).body.totalResults).toBe(0);
    expect((await q(`${ENT}:manager.value eq "${boss}"`)).body.Resources.map((r: { id: string }) => r.id)).toEqual([report]);
    await ctx.patch(`/Users/${report}`, { schemas: [PATCH], Operations: [{ op: 'Replace', path: 'manager', value: other }] }).expect(200);
    expect((await q(`manager eq "${other}"`)).body.Resources.map((r: { id: string }) => r.id)).toEqual([report]);
    expect((await q(`manager eq "${boss}"`)).body.totalResults).toBe(0);
    expect((await q(`not (manager pr)`)).body.totalResults).toBeGreaterThanOrEqual(2);
    await ctx.patch(`/Users/${report}`, { schemas: [PATCH], Operations: [{ op: 'Remove', path: 'manager' }] }).expect(200);
    expect((await q(`manager eq "${other}"`)).body.totalResults).toBe(0);
  });
});
