/** The request shapes Entra ID and Okta really send, end to end over HTTP. */
import { scimContext, newUser, GROUP_SCHEMA, PATCH, USER_SCHEMA, type ScimTestContext } from './support';
import { UserEntity } from '../../entities';

const ENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const q = (s: string) => encodeURIComponent(s);

describe.each(['sqlite', 'postgres', 'mariadb'] as const)('IdP request shapes on %s', (db) => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext(db);
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  describe('Microsoft Entra ID', () => {
    it('Test Connection: a filter that matches nothing is an empty ListResponse, not 404', async () => {
      const res = await ctx.get(`/Users?filter=${q('userName eq "non-existent-user-7f3a"')}`).expect(200);
      expect(res.body).toEqual({ schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'], totalResults: 0, startIndex: 1, itemsPerPage: 0, Resources: [] });
      const ext = await ctx.get(`/Users?filter=${q('externalId eq "nothing"')}`).expect(200);
      expect(ext.body.totalResults).toBe(0);
      // A tenant URL carrying the feature flag as a query parameter still works.
      const flagged = await ctx.get(`/Users?aadOptscim062020&filter=${q('userName eq "nobody"')}`).expect(200);
      expect(flagged.body.totalResults).toBe(0);
      await ctx.post('/Users?aadOptscim062020', newUser('flag-param@contoso.com')).expect(201);
    });

    it('creates with the enterprise extension, then patches the way Entra does (default mode)', async () => {
      const boss = (await ctx.post('/Users', newUser('boss@contoso.com')).expect(201)).body;
      const created = (
        await ctx
          .post('/Users', {
            schemas: [USER_SCHEMA, ENT],
            externalId: 'entra-obj-1',
            userName: 'Test_User_1@contoso.com',
            active: true,
            displayName: 'Test User 1',
            emails: [{ primary: true, type: 'work', value: 'Test_User_1@contoso.com' }],
            meta: { resourceType: 'User' },
            name: { formatted: 'Test User 1', familyName: 'User', givenName: 'Test' },
            roles: [],
            [ENT]: { department: 'R&D', employeeNumber: '42' },
          })
          .expect(201)
      ).body;
      expect(created[ENT]).toEqual({ department: 'R&D', employeeNumber: '42' });
      const res = await ctx
        .patch(`/Users/${created.id}`, {
          schemas: [PATCH],
          Operations: [
            { op: 'Replace', path: 'displayName', value: 'Test User One' },
            { op: 'Add', path: `${ENT}:manager`, value: boss.id },
            { op: 'Add', path: 'emails[type eq "other"].value', value: 'other@contoso.com' },
            { op: 'Replace', path: 'active', value: 'False' },
          ],
        })
        .expect(200);
      expect(res.body).toMatchObject({ displayName: 'Test User One', active: false, [ENT]: { manager: { value: boss.id }, department: 'R&D' } });
      expect(res.body.emails).toEqual([
        { primary: true, type: 'work', value: 'Test_User_1@contoso.com' },
        { type: 'other', value: 'other@contoso.com' },
      ]);
      // Entra's lookup before each change: by externalId and by userName.
      const found = await ctx.get(`/Users?filter=${q('userName eq "test_user_1@contoso.com"')}`).expect(200);
      expect(found.body.Resources.map((u: { id: string }) => u.id)).toEqual([created.id]);
    });

    it('pathless replace with dotted and URN-prefixed keys (aadOptscim062020), columns follow', async () => {
      const u = (await ctx.post('/Users', newUser('flag@contoso.com', { emails: undefined })).expect(201)).body;
      await ctx
        .patch(`/Users/${u.id}`, {
          schemas: [PATCH],
          Operations: [
            {
              op: 'replace',
              value: {
                'name.givenName': 'Flagged',
                'name.familyName': 'Person',
                'emails[type eq "work"].value': 'flag.work@contoso.com',
                [`${ENT}:employeeNumber`]: '77',
                active: false,
              },
            },
          ],
        })
        .expect(200);
      const row = await ctx.store.dataSource.manager.findOneBy(UserEntity, { id: u.id });
      expect(row).toMatchObject({ givenName: 'Flagged', familyName: 'Person', email: 'flag.work@contoso.com', active: false });
      const byMail = await ctx.get(`/Users?filter=${q('emails[type eq "work"].value eq "flag.work@contoso.com"')}`).expect(200);
      expect(byMail.body.Resources.map((r: { id: string }) => r.id)).toEqual([u.id]);
    });

    it('group membership check and removal the way Entra sends them', async () => {
      const a = (await ctx.post('/Users', newUser('ga@contoso.com')).expect(201)).body.id;
      const b = (await ctx.post('/Users', newUser('gb@contoso.com')).expect(201)).body.id;
      const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Entra Group', externalId: 'entra-g-1', members: [] }).expect(201)).body;
      await ctx.patch(`/Groups/${g.id}`, { schemas: [PATCH], Operations: [{ op: 'Add', path: 'members', value: [{ value: a }, { value: b }] }] }).expect(204);
      const check = await ctx.get(`/Groups?filter=${q(`id eq "${g.id}" and members[value eq "${a}"]`)}&excludedAttributes=members`).expect(200);
      expect(check.body.totalResults).toBe(1);
      expect(check.body.Resources[0].members).toBeUndefined();
      await ctx.patch(`/Groups/${g.id}`, { schemas: [PATCH], Operations: [{ op: 'Remove', path: `members[value eq "${a}"]` }] }).expect(204);
      await ctx.patch(`/Groups/${g.id}`, { schemas: [PATCH], Operations: [{ op: 'Remove', path: 'members', value: [{ value: b }] }] }).expect(204);
      const after = await ctx.get(`/Groups/${g.id}`).expect(200);
      expect(after.body.members ?? []).toEqual([]);
    });
  });

  describe('Okta', () => {
    it('create with password and groups:[]; password never stored or returned', async () => {
      const res = await ctx
        .post('/Users', {
          schemas: [USER_SCHEMA],
          userName: 'isaac.brock@example.com',
          name: { givenName: 'Isaac', familyName: 'Brock' },
          emails: [{ primary: true, value: 'isaac.brock@example.com', type: 'work' }],
          displayName: 'Isaac Brock',
          locale: 'en-US',
          externalId: '00ujl29u0le5T6Aj10h7',
          groups: [],
          password: '1mz050nq',
          active: true,
        })
        .expect(201);
      expect(res.body.password).toBeUndefined();
      const row = await ctx.store.dataSource.manager.findOneBy(UserEntity, { id: res.body.id });
      expect(row?.scimAttributes).not.toContain('1mz050nq');
    });

    it('lookup with filter=userName eq plus startIndex/count; integers in the ListResponse', async () => {
      const res = await ctx.get(`/Users?filter=${q('userName eq "isaac.brock@example.com"')}&startIndex=1&count=100`).expect(200);
      expect(res.body).toMatchObject({ totalResults: 1, startIndex: 1, itemsPerPage: 1 });
      expect(typeof res.body.totalResults).toBe('number');
    });

    it('full-object PUT and pathless replace of active', async () => {
      const u = (await ctx.get(`/Users?filter=${q('userName eq "isaac.brock@example.com"')}`).expect(200)).body.Resources[0];
      const put = await ctx.put(`/Users/${u.id}`, { ...u, name: { givenName: 'Isaac', familyName: 'Brock-Smith' }, password: 'another' }).expect(200);
      expect(put.body.name.familyName).toBe('Brock-Smith');
      const off = await ctx.patch(`/Users/${u.id}`, { schemas: [PATCH], Operations: [{ op: 'replace', value: { active: false } }] }).expect(200);
      expect(off.body.active).toBe(false);
    });
  });

  it('pagination over HTTP: startIndex/count honoured, totalResults over all matches', async () => {
    for (let i = 0; i < 7; i++) await ctx.post('/Users', newUser(`page${i}@paging.example`)).expect(201);
    const filter = q('userName ew "@paging.example"');
    const p1 = await ctx.get(`/Users?filter=${filter}&sortBy=userName&startIndex=1&count=3`).expect(200);
    const p3 = await ctx.get(`/Users?filter=${filter}&sortBy=userName&startIndex=7&count=3`).expect(200);
    expect(p1.body).toMatchObject({ totalResults: 7, startIndex: 1, itemsPerPage: 3 });
    expect(p1.body.Resources.map((u: { userName: string }) => u.userName)).toEqual(['page0@paging.example', 'page1@paging.example', 'page2@paging.example']);
    expect(p3.body).toMatchObject({ totalResults: 7, startIndex: 7, itemsPerPage: 1 });
    expect(p3.body.Resources[0].userName).toBe('page6@paging.example');
    const zero = await ctx.get(`/Users?filter=${filter}&count=0`).expect(200);
    expect(zero.body).toMatchObject({ totalResults: 7, itemsPerPage: 0, Resources: [] });
    const bad = await ctx.get('/Users?startIndex=abc').expect(400);
    expect(bad.body.scimType).toBe('invalidValue');
    const badFilter = await ctx.get(`/Users?filter=${q('userName eq')}`).expect(400);
    expect(badFilter.body).toMatchObject({ status: '400', scimType: 'invalidFilter' });
  });
});
