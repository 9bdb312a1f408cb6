/**
 * Hostile or oversized SCIM input gets 400 in the SCIM error format, naming the attribute, with
 * nothing written — never a 500 from the database (PostgreSQL refuses NUL and over-wide strings,
 * MariaDB over-wide strings and over-long TEXT). Limits are advertised in /Schemas.
 */
import { GroupEntity, UserEntity } from '../../entities';
import { COLUMN_LIMITS, LIMITS } from '../../scim/schemas';
import { GROUP_SCHEMA, newUser, PATCH, scimContext, USER_SCHEMA, type ScimTestContext } from './support';

const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const ENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const NUL = '\u0000';

describe.each(['sqlite', 'postgres', 'mariadb'] as const)('SCIM input limits on %s', (db) => {
  let ctx: ScimTestContext;
  let victim: string;
  let group: string;
  beforeAll(async () => {
    ctx = await scimContext(db);
    victim = (await ctx.post('/Users', newUser('victim@limits.example')).expect(201)).body.id;
    group = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Limits', members: [{ value: victim }] }).expect(201)).body.id;
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  const m = () => ctx.store.dataSource.manager;
  /** Everything a refused request must leave as it was. */
  const snapshot = async () => ({
    users: await m().count(UserEntity),
    groups: await m().count(GroupEntity),
    victim: await m().findOneByOrFail(UserEntity, { id: victim }),
    group: await m().findOneByOrFail(GroupEntity, { id: group }),
  });
  const refused = (res: { body: Record<string, unknown> }, attribute: string, scimType = 'invalidValue') => {
    expect(res.body).toMatchObject({ schemas: [ERROR], status: '400', scimType });
    expect(res.body.detail).toEqual(expect.stringContaining(attribute));
    expect(JSON.stringify(res.body)).not.toMatch(/\n\s+at |stack|QueryFailed|invalid byte sequence|Data too long/);
  };

  it.each([
    ['userName', { userName: `nul${NUL}@limits.example` }],
    ['displayName', { displayName: `Nul${NUL}Name` }],
    ['externalId', { externalId: `ext${NUL}` }],
    ['emails.value', { emails: [{ value: `a${NUL}@limits.example`, type: 'work' }] }],
    ['name.givenName', { name: { givenName: `Gi${NUL}ven` } }],
    [`${ENT}:department`, { [ENT]: { department: `R${NUL}D` } }],
    [`${ENT}:manager.value`, { [ENT]: { manager: { value: `boss${NUL}` } } }],
  ])('POST /Users with NUL in %s: 400 naming it, nothing written', async (attribute, extra) => {
    const before = await snapshot();
    const res = await ctx.post('/Users', newUser('nul@limits.example', extra)).expect(400);
    refused(res, attribute);
    expect(await snapshot()).toEqual(before);
  });

  it('NUL in a group displayName, a PATCH value, a PUT, a filter or an id: 4xx, nothing written', async () => {
    const before = await snapshot();
    refused(await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: `G${NUL}` }).expect(400), 'displayName');
    refused(await ctx.patch(`/Users/${victim}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: 'title', value: `t${NUL}` }] }).expect(400), 'title');
    refused(await ctx.patch(`/Groups/${group}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: 'displayName', value: `g${NUL}` }] }).expect(400), 'displayName');
    refused(await ctx.put(`/Users/${victim}`, { schemas: [USER_SCHEMA], userName: 'victim@limits.example', nickName: `n${NUL}` }).expect(400), 'nickName');
    // Membership operations reach a query before the group is checked as a whole.
    refused(await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'G', members: [{ value: `m${NUL}` }] }).expect(400), 'members.value');
    for (const op of [
      { op: 'add', path: 'members', value: [{ value: `m${NUL}` }] },
      { op: 'remove', path: 'members', value: [{ value: `m${NUL}` }] },
      { op: 'replace', path: 'members', value: [{ value: `m${NUL}` }] },
    ]) {
      refused(await ctx.patch(`/Groups/${group}`, { schemas: [PATCH], Operations: [op] }).expect(400), 'members.value');
    }
    refused(await ctx.patch(`/Groups/${group}`, { schemas: [PATCH], Operations: [{ op: 'remove', path: `members[value eq "m${NUL}"]` }] }).expect(400), 'path', 'invalidPath');
    refused(await ctx.get(`/Users?filter=${encodeURIComponent(`userName eq "a${NUL}"`)}`).expect(400), 'NUL', 'invalidFilter');
    const byId = await ctx.get('/Users/%00').expect(404);
    expect(byId.body).toMatchObject({ schemas: [ERROR], status: '404' });
    expect(await snapshot()).toEqual(before);
  });

  it('strings longer than their column: 400 naming the attribute; the limit itself fits every database', async () => {
    const before = await snapshot();
    refused(await ctx.post('/Users', newUser('long@limits.example', { displayName: 'd'.repeat(300) })).expect(400), 'displayName');
    refused(await ctx.post('/Users', newUser('long@limits.example', { emails: [{ value: `${'e'.repeat(990)}@x.example`, type: 'work' }] })).expect(400), 'emails.value');
    refused(await ctx.post('/Users', newUser(`${'u'.repeat(256)}`)).expect(400), 'userName');
    refused(await ctx.post('/Users', newUser('long@limits.example', { name: { familyName: 'f'.repeat(256) } })).expect(400), 'name.familyName');
    refused(await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'g'.repeat(300) }).expect(400), 'displayName');
    refused(await ctx.patch(`/Users/${victim}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: 'displayName', value: 'd'.repeat(300) }] }).expect(400), 'displayName');
    refused(await ctx.post('/Users', newUser('long@limits.example', { title: 't'.repeat(LIMITS.maxStringLength + 1) })).expect(400), 'title');
    expect(await snapshot()).toEqual(before);
    // At the limit, counted in characters as the databases count them (an emoji is one, not two).
    const emoji = '😀'.repeat(COLUMN_LIMITS.User.displayname);
    const ok = await ctx.post('/Users', newUser('edge@limits.example', { displayName: emoji, emails: [{ value: `${'e'.repeat(COLUMN_LIMITS.User['emails.value'] - 10)}@x.example`, type: 'work' }] })).expect(201);
    expect((await m().findOneByOrFail(UserEntity, { id: ok.body.id })).displayName).toBe(emoji);
  });

  it('10,000 emails or phone numbers, or a PATCH adding 10,000 emails: 400 before any write', async () => {
    const before = await snapshot();
    const emails = Array.from({ length: 10_000 }, (_, i) => ({ value: `u${i}@limits.example`, type: 'other' }));
    const phones = Array.from({ length: 10_000 }, (_, i) => ({ value: `+1555${String(i).padStart(6, '0')}`, type: 'work' }));
    refused(await ctx.post('/Users', newUser('many@limits.example', { emails })).expect(400), 'emails');
    refused(await ctx.post('/Users', newUser('many@limits.example', { phoneNumbers: phones })).expect(400), 'phoneNumbers');
    refused(await ctx.patch(`/Users/${victim}`, { schemas: [PATCH], Operations: [{ op: 'add', path: 'emails', value: emails }] }).expect(400), 'emails');
    expect(await snapshot()).toEqual(before);
  });

  it('values within their count whose stored JSON would outgrow the column: 400 naming the size limit', async () => {
    const before = await snapshot();
    const emails = Array.from({ length: LIMITS.maxValues }, (_, i) => ({ value: `${String(i).padStart(3, '0')}${'e'.repeat(300)}@x.example`, type: 'other' }));
    refused(await ctx.post('/Users', newUser('big@limits.example', { emails })).expect(400), String(LIMITS.maxAttributeBytes));
    expect(await snapshot()).toEqual(before);
    // Just under: stored and read back whole on every database.
    const fits = emails.slice(0, 60);
    const ok = await ctx.post('/Users', newUser('big@limits.example', { emails: fits })).expect(201);
    expect((await ctx.get(`/Users/${ok.body.id}`).expect(200)).body.emails).toHaveLength(60);
  });

  it.each([5, null])('a PATCH path of %p: 400 invalidPath, nothing written', async (path) => {
    const before = await snapshot();
    refused(await ctx.patch(`/Users/${victim}`, { schemas: [PATCH], Operations: [{ op: 'replace', path, value: 'x' }] }).expect(400), 'path', 'invalidPath');
    refused(await ctx.patch(`/Groups/${group}`, { schemas: [PATCH], Operations: [{ op: 'remove', path }] }).expect(400), 'path', 'invalidPath');
    expect(await snapshot()).toEqual(before);
  });
});

describe('SCIM limits are advertised in /Schemas', () => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext('sqlite');
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  it('attribute descriptions state the character and value limits', async () => {
    const user = (await ctx.get(`/Schemas/${USER_SCHEMA}`).expect(200)).body;
    const attr = (name: string) => user.attributes.find((a: { name: string }) => a.name === name);
    expect(attr('userName').description).toContain('at most 255 characters');
    expect(attr('emails').description).toContain(`at most ${LIMITS.maxValues} values`);
    expect(attr('emails').subAttributes.find((a: { name: string }) => a.name === 'value').description).toContain('at most 320 characters');
    expect(attr('title').description).toContain(`at most ${LIMITS.maxStringLength} characters`);
    const groupSchema = (await ctx.get(`/Schemas/${GROUP_SCHEMA}`).expect(200)).body;
    expect(groupSchema.attributes.find((a: { name: string }) => a.name === 'displayName').description).toContain('at most 255 characters');
    expect(groupSchema.attributes.find((a: { name: string }) => a.name === 'members').description).not.toContain('values.');
  });
});
