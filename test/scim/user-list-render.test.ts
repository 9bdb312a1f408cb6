/**
 * GET /Users renders its page straight from rows (scim/http.ts presentUserList, issue 10). It must
 * answer the same bytes as the resource path it replaced — presentList('User') over the service's
 * userResource() — for odd stored profiles (unit) and for real pages on each database: filters,
 * sorts, deep pages read from either end, attribute selection, users with groups and without keys,
 * non-ASCII text; and its Content-Length must count the bytes sent.
 */
import { randomBytes } from 'node:crypto';
import { presentList, presentUserList, shape, shapedUser } from '../../scim/http';
import { userResource, type ListedUser } from '../../scim/resources';
import { scimServiceFor } from '../../scim/router';
import { ScimQueries } from '../../scim/repositories/scim-queries';
import { ENTERPRISE_USER_SCHEMA, USER_KEYS_SCHEMA } from '../../scim/schemas';
import type { ScimService } from '../../scim/service';
import type { UserKeysRow } from '../../entities';
import { testDatabaseNames } from '../support/databases';
import { GROUP_SCHEMA, newUser, scimContext, USER_SCHEMA, type ScimTestContext } from './support';

const BASE = 'https://idp.example.test/scim/v2';

describe('shapedUser ≡ shape(userResource)', () => {
  const keys: UserKeysRow = { userId: 'u1', keyAlg: 'ES256', publicJwk: '{"kty":"EC"}', privateJwe: 'a.b.c.d.e', wrappedPasswordKey: 'w', kekUri: 'local:kek/1', createdAt: '2026-01-01T00:00:00.000Z' };
  const row = (scimAttributes: string, over: Partial<ListedUser> = {}): ListedUser => ({
    id: 'u1',
    userName: 'Alice',
    externalId: 'ext-1',
    active: true,
    scimAttributes,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-02T00:00:00.000Z',
    version: 3,
    ...over,
  });
  const groups = [
    { groupId: 'g2', display: 'B' },
    { groupId: 'g1', display: 'a' },
  ];
  const cases: [string, ListedUser, UserKeysRow | undefined, typeof groups | undefined][] = [
    ['a typical profile', row(JSON.stringify({ userName: 'Alice', name: { givenName: 'A' }, active: true, emails: [{ value: 'a@x', type: 'work' }] })), keys, []],
    ['userName and active only from the columns (profile without them)', row('{"displayName":"A"}', { active: false }), keys, undefined],
    ['the column disagrees with the stored profile', row(JSON.stringify({ active: true, userName: 'old', externalId: 'old-ext' }), { active: 0 as unknown as boolean, userName: 'new' }), keys, []],
    ['externalId only in the profile (column null)', row(JSON.stringify({ externalId: '', userName: 'Alice' }), { externalId: null }), keys, []],
    ['no externalId anywhere', row(JSON.stringify({ userName: 'Alice' }), { externalId: null }), keys, []],
    ['a null externalId in the profile', row(JSON.stringify({ externalId: null }), { externalId: null }), keys, []],
    ['the enterprise extension, before other attributes', row(JSON.stringify({ [ENTERPRISE_USER_SCHEMA]: { department: 'x' }, userName: 'Alice', title: 't' })), keys, groups],
    ['no keys', row(JSON.stringify({ userName: 'Alice' })), undefined, groups],
    ['stale groups and keys in the profile, replaced in place', row(JSON.stringify({ groups: [{ value: 'old' }], userName: 'Alice', [USER_KEYS_SCHEMA]: { keyAlgorithm: 'old' }, nickName: 'n' })), keys, groups],
    ['stale groups kept when the user has none, stale keys when it has no key row', row(JSON.stringify({ groups: [{ value: 'old' }], [USER_KEYS_SCHEMA]: { keyAlgorithm: 'old' } })), undefined, []],
    ['ids, meta and schemas in the profile are ours', row(JSON.stringify({ id: 'spoof', meta: { x: 1 }, schemas: ['x'], userName: 'Alice' })), keys, []],
    ['integer-like and __proto__ keys', row('{"b":1,"2":"two","__proto__":{"polluted":true},"1":"one"}'), keys, []],
    ['an empty stored profile', row(''), keys, []],
  ];

  it.each(cases)('%s', (_name, r, k, g) => {
    const old = shape('User', userResource(r, k, g, '/scim/v2'), `${BASE}/Users`);
    const fused = shapedUser(r, k, g, '/scim/v2', `${BASE}/Users`);
    expect(JSON.stringify(fused)).toBe(JSON.stringify(old));
    expect(Object.getPrototypeOf(fused)).toBe(Object.prototype);
  });
});

describe.each(testDatabaseNames())('GET /Users ≡ presentList over listUsers on %s', (kind) => {
  let c: ScimTestContext;
  let service: ScimService;
  const ids: string[] = [];

  beforeAll(async () => {
    c = await scimContext(kind, { CS_SCIM_BASE_URL: BASE });
    service = scimServiceFor(c);
    for (let i = 0; i < 14; i++) {
      const extra: Record<string, unknown> = { externalId: `ext-${String(i).padStart(2, '0')}`, active: i % 4 !== 0 };
      if (i % 3 === 0) extra.schemas = [USER_SCHEMA, ENTERPRISE_USER_SCHEMA];
      if (i % 3 === 0) extra[ENTERPRISE_USER_SCHEMA] = { department: `d${i % 2}`, employeeNumber: String(i) };
      if (i % 5 === 0) delete extra.externalId;
      const res = await c.post('/Users', newUser(`user-${randomBytes(3).toString('hex')}-${i}@example.com`, extra)).expect(201);
      ids.push(res.body.id as string);
    }
    // Non-ASCII text (2-, 3- and 4-byte UTF-8): Content-Length counts bytes, not characters.
    const res = await c.post('/Users', newUser(`user-zoë-${randomBytes(3).toString('hex')}@example.com`, { displayName: 'Zoë 名前 🔑', externalId: 'ext-ü' })).expect(201);
    ids.push(res.body.id as string);
    await c.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Zeta', members: [{ value: ids[1] }, { value: ids[2] }] }).expect(201);
    await c.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'alpha', members: [{ value: ids[2] }] }).expect(201);
    await c.del(`/Users/${ids[6]}`).expect(204);
  }, 120_000);
  afterAll(async () => {
    await c?.cleanup();
  });

  // Every row has three entries: jest reads a test function with more parameters than the row as one wanting done().
  const lists: [string, Parameters<ScimService['listUsers']>[0], { attributes?: string[]; excluded?: string[] } | undefined][] = [
    ['first page', { startIndex: 1, count: 100 }, undefined],
    ['a page of 4', { startIndex: 2, count: 4 }, undefined],
    ['a deep page read from the end', { startIndex: 11, count: 3 }, undefined],
    ['the last, partial page', { startIndex: 12, count: 5 }, undefined],
    ['beyond the end', { startIndex: 40, count: 5 }, undefined],
    ['count=0', { startIndex: 1, count: 0 }, undefined],
    ['sorted by userName, descending, deep', { startIndex: 9, count: 3, sortBy: 'userName', sortOrder: 'descending' }, undefined],
    ['filter eq', { startIndex: 1, count: 100, filter: 'externalId eq "ext-02"' }, undefined],
    ['filter sw', { startIndex: 1, count: 100, filter: 'userName sw "user-"' }, undefined],
    ['compound filter, deep', { startIndex: 3, count: 2, filter: 'externalId sw "ext-0" or active eq false and userName sw "user"' }, undefined],
    ['extension filter', { startIndex: 1, count: 100, filter: `${ENTERPRISE_USER_SCHEMA}:department eq "d1"` }, undefined],
    ['attributes=userName,groups', { startIndex: 1, count: 100 }, { attributes: ['userName', 'groups'] }],
    ['excludedAttributes=keys extension,emails', { startIndex: 1, count: 100 }, { excluded: [USER_KEYS_SCHEMA, 'emails'] }],
  ];

  const query = (p: Parameters<ScimService['listUsers']>[0], sel?: { attributes?: string[]; excluded?: string[] }) => {
    const q = new URLSearchParams({ startIndex: String(p.startIndex), count: String(p.count) });
    if (p.filter) q.set('filter', p.filter);
    if (p.sortBy) q.set('sortBy', p.sortBy);
    if (p.sortOrder) q.set('sortOrder', p.sortOrder);
    if (sel?.attributes) q.set('attributes', sel.attributes.join(','));
    if (sel?.excluded) q.set('excludedAttributes', sel.excluded.join(','));
    return q.toString();
  };

  it.each(lists)('%s', async (_name, params, sel) => {
    const res = await c.get(`/Users?${query(params, sel)}`).expect(200);
    const before = JSON.stringify(presentList('User', await service.listUsers(params), BASE, sel));
    expect(res.text).toBe(before);
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(before));
    // The same page from the rows directly, without HTTP.
    expect(JSON.stringify(presentUserList(await service.listUserPage(params), BASE, sel))).toBe(before);
  });

  it.each([
    ['first page', 1],
    ['deep page', 9],
  ])('the groups a %s brings with its rows (PostgreSQL) are those groupsOf reads', async (_name, startIndex) => {
    const q = new ScimQueries(c.store.dataSource.manager);
    const page = await q.listUsers({ startIndex, count: 100 });
    expect(page.groups !== undefined).toBe(kind === 'postgres');
    if (page.groups) expect(page.groups).toEqual(await q.groupsOf(page.rows.map((r) => r.id)));
    if (startIndex === 1) expect([...(page.groups ?? (await q.groupsOf(page.rows.map((r) => r.id)))).values()].filter((g) => g.length === 2)).toEqual([[expect.objectContaining({ display: 'alpha' }), expect.objectContaining({ display: 'Zeta' })]]);
  });

  it('the pages cover users with groups, without externalId and with the enterprise extension', async () => {
    const body = JSON.parse((await c.get('/Users?count=100').expect(200)).text) as { Resources: Record<string, unknown>[] };
    expect(body.Resources.some((r) => Array.isArray(r.groups) && r.groups.length === 2)).toBe(true);
    expect(body.Resources.some((r) => r.externalId === undefined)).toBe(true);
    expect(body.Resources.some((r) => r[ENTERPRISE_USER_SCHEMA] !== undefined)).toBe(true);
    expect(body.Resources.some((r) => r.displayName === 'Zoë 名前 🔑')).toBe(true);
    expect(body.Resources.map((r) => r.id)).not.toContain(ids[6]);
  });
});
