import { parseMemberPatch } from '../../scim/group-members';
import { applyPatch, canonicalPath, normalisePatchOperations, normaliseResourceBody, UnknownAttributeError } from '../../scim/idp-quirks';
import { ENTERPRISE_USER_SCHEMA, PATCH_OP_SCHEMA, SCIMMY, USER_KEYS_SCHEMA } from '../../scim/schemas';

const EXT = [ENTERPRISE_USER_SCHEMA, USER_KEYS_SCHEMA];
const user = {
  id: 'u1',
  userName: 'alice@example.com',
  active: true,
  name: { givenName: 'Alice', familyName: 'A' },
  emails: [{ value: 'alice@home.example', type: 'home' }],
};

async function patchUser(ops: unknown[], current: Record<string, unknown> = user): Promise<Record<string, any>> {
  const resource = new SCIMMY.Schemas.User(current, 'out');
  const operations = normalisePatchOperations(ops, JSON.parse(JSON.stringify(resource)), EXT);
  const patched = await new SCIMMY.Messages.PatchOp({ schemas: [PATCH_OP_SCHEMA], Operations: operations as never }).apply(resource);
  return JSON.parse(JSON.stringify(patched ?? resource));
}

async function patchGroup(ops: unknown[]): Promise<Record<string, any>> {
  const resource = new SCIMMY.Schemas.Group({ id: 'g1', displayName: 'Eng', members: [{ value: 'u1' }, { value: 'u2' }, { value: 'u3' }] }, 'out');
  const operations = normalisePatchOperations(ops, JSON.parse(JSON.stringify(resource)), []);
  const patched = await new SCIMMY.Messages.PatchOp({ schemas: [PATCH_OP_SCHEMA], Operations: operations as never }).apply(resource);
  return JSON.parse(JSON.stringify(patched ?? resource));
}

describe('Entra ID request shapes', () => {
  it('capitalised ops and "False" strings (default mode)', async () => {
    const r = await patchUser([{ op: 'Replace', path: 'active', value: 'False' }]);
    expect(r.active).toBe(false);
    expect((await patchUser([{ op: 'Replace', path: 'active', value: 'True' }], { ...user, active: false })).active).toBe(true);
  });

  it('manager sent as a bare id', async () => {
    const r = await patchUser([{ op: 'Add', path: `${ENTERPRISE_USER_SCHEMA}:manager`, value: 'boss-id' }]);
    expect(r[ENTERPRISE_USER_SCHEMA].manager).toEqual({ value: 'boss-id' });
  });

  it('Add on emails[type eq "work"].value when no work email exists yet creates it', async () => {
    const r = await patchUser([{ op: 'Add', path: 'emails[type eq "work"].value', value: 'alice@example.com' }]);
    expect(r.emails).toEqual([
      { value: 'alice@home.example', type: 'home' },
      { value: 'alice@example.com', type: 'work' },
    ]);
    const first = await patchUser([{ op: 'Add', path: 'emails[type eq "work"].value', value: 'a@x' }], { ...user, emails: undefined });
    expect(first.emails).toEqual([{ value: 'a@x', type: 'work', primary: true }]);
  });

  it('Replace on an existing work email changes it in place', async () => {
    const r = await patchUser([{ op: 'Replace', path: 'emails[type eq "work"].value', value: 'new@x' }], { ...user, emails: [{ value: 'old@x', type: 'work', primary: true }] });
    expect(r.emails).toEqual([{ value: 'new@x', type: 'work', primary: true }]);
  });

  it('pathless replace with dotted and URN-prefixed keys (aadOptscim062020)', async () => {
    const r = await patchUser([
      {
        op: 'replace',
        value: {
          'name.givenName': 'Alicia',
          'name.familyName': 'B',
          [`${ENTERPRISE_USER_SCHEMA}:department`]: 'R&D',
          'emails[type eq "work"].value': 'alicia@example.com',
          active: 'False',
        },
      },
    ]);
    expect(r.name).toEqual({ givenName: 'Alicia', familyName: 'B' });
    expect(r[ENTERPRISE_USER_SCHEMA].department).toBe('R&D');
    expect(r.emails).toContainEqual({ value: 'alicia@example.com', type: 'work' });
    expect(r.active).toBe(false);
  });

  it('member removal by value array and by members[value eq "..."]', async () => {
    expect((await patchGroup([{ op: 'Remove', path: 'members', value: [{ value: 'u1' }, { value: 'u3' }] }])).members).toEqual([{ value: 'u2' }]);
    expect((await patchGroup([{ op: 'Remove', path: 'members[value eq "u2"]' }])).members).toEqual([{ value: 'u1' }, { value: 'u3' }]);
  });
});

describe('Okta request shapes', () => {
  it('pathless replace of active', async () => {
    expect((await patchUser([{ op: 'replace', value: { active: false } }])).active).toBe(false);
  });

  it('group push: rename and membership in one PATCH (id in the value is ignored)', async () => {
    const r = await patchGroup([
      { op: 'replace', value: { id: 'g1', displayName: 'Engineering' } },
      { op: 'add', path: 'members', value: [{ value: 'u9', display: 'nine' }] },
      { op: 'remove', path: 'members[value eq "u1"]' },
    ]);
    expect(r.displayName).toBe('Engineering');
    expect(r.members.map((m: { value: string }) => m.value)).toEqual(['u2', 'u3', 'u9']);
  });

  it('create with password and groups:[] — both dropped, never stored', () => {
    const body = normaliseResourceBody(
      { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'bob@x', password: 'hunter2', groups: [], active: true },
      SCIMMY.Schemas.User.definition,
    );
    expect(body).toEqual({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'bob@x', active: true });
  });

  it('full-object PUT including read-only fields', () => {
    const body = normaliseResourceBody(
      {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', USER_KEYS_SCHEMA],
        id: 'u1',
        meta: { resourceType: 'User', created: '2020-01-01T00:00:00Z' },
        userName: 'bob@x',
        groups: [{ value: 'g1' }],
        [USER_KEYS_SCHEMA]: { kekUri: 'local://evil' },
        [`${USER_KEYS_SCHEMA}:kekUri`]: 'local://evil',
      },
      SCIMMY.Schemas.User.definition,
    );
    expect(body).toEqual({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'bob@x' });
  });
});

describe('bad input', () => {
  it('rejects unknown attributes and schemas instead of dropping them', () => {
    expect(() => normaliseResourceBody({ userName: 'x', favouriteColour: 'red' }, SCIMMY.Schemas.User.definition)).toThrow(UnknownAttributeError);
    expect(() => normaliseResourceBody({ userName: 'x', schemas: ['urn:example:custom'] }, SCIMMY.Schemas.User.definition)).toThrow(UnknownAttributeError);
    // An IdP mapping to a custom extension is told what to change on its side.
    expect(() => normaliseResourceBody({ userName: 'x', 'urn:ietf:params:scim:schemas:extension:custom:2.0:User': { costCenter: '1' } }, SCIMMY.Schemas.User.definition)).toThrow(
      /extension schema is not supported; remove the mapping in the identity provider/,
    );
  });

  it('read-only extension attributes cannot be patched (400 mutability)', async () => {
    await expect(patchUser([{ op: 'replace', path: `${USER_KEYS_SCHEMA}:kekUri`, value: 'x' }], { ...user, [USER_KEYS_SCHEMA]: { kekUri: 'local://k' } })).rejects.toMatchObject({
      status: 400,
      scimType: 'mutability',
    });
  });
});

describe('applyPatch (ops in order, names case-insensitive, removal by value)', () => {
  const members = ['u1', 'u2', 'u3'].map((v) => ({ value: v, display: `${v}@x`, $ref: `/scim/v2/Users/${v}`, type: 'User' }));
  const group = () => new SCIMMY.Schemas.Group({ id: 'g1', displayName: 'Eng', members }, 'out');
  const json = (r: unknown) => JSON.parse(JSON.stringify(r)) as Record<string, any>;

  it('a removal value matches members on value alone, whatever else the object carries (Entra: "$ref": null)', () => {
    // Group membership never reaches applyPatch: scim/group-members.ts applies it.
    const patch = parseMemberPatch([{ op: 'Remove', path: 'members', value: [{ $ref: null, value: 'u2' }, { value: 'u3', display: 'other' }] }]);
    expect(patch.otherOps).toEqual([]);
    expect(patch.apply(members.map((m) => m.value))).toEqual(['u1']);
  });

  it('spells paths as the schema does, and gives bare extension attributes their URN', () => {
    const def = SCIMMY.Schemas.User.definition;
    expect(canonicalPath('Name.GivenName', def, EXT)).toBe('name.givenName');
    expect(canonicalPath('EMAILS[type eq "work"].Value', def, EXT)).toBe('emails[type eq "work"].value');
    expect(canonicalPath(`${ENTERPRISE_USER_SCHEMA.toUpperCase()}:Department`, def, EXT)).toBe(`${ENTERPRISE_USER_SCHEMA}:department`);
    expect(canonicalPath('urn:ietf:params:scim:schemas:core:2.0:User:UserName', def, EXT)).toBe('userName');
    expect(canonicalPath('manager', def, EXT)).toBe(`${ENTERPRISE_USER_SCHEMA}:manager`);
    expect(canonicalPath('noSuchThing', def, EXT)).toBe('noSuchThing');
  });

  it('each op sees the changes of the ops before it: one new work address, not one per sub-attribute', async () => {
    const resource = new SCIMMY.Schemas.User(user, 'out');
    const ops = ['streetAddress', 'locality', 'postalCode'].map((sub, i) => ({ op: 'Add', path: `addresses[type eq "work"].${sub}`, value: `v${i}` }));
    const r = json(await applyPatch(resource, { schemas: [PATCH_OP_SCHEMA], Operations: ops }, EXT));
    expect(r.addresses).toEqual([{ type: 'work', streetAddress: 'v0', locality: 'v1', postalCode: 'v2', primary: true }]);
  });

  it('sub-attribute names inside a value are case-insensitive too, also for a filtered element', async () => {
    const resource = new SCIMMY.Schemas.User({ ...user, emails: [{ value: 'w@x', type: 'work' }] }, 'out');
    const ops = [
      { op: 'replace', path: 'Name', value: { GivenName: 'Al' } },
      { op: 'add', path: 'emails[type eq "work"]', value: { Display: 'Work' } },
    ];
    const r = json(await applyPatch(resource, { schemas: [PATCH_OP_SCHEMA], Operations: ops }, EXT));
    expect(r.name.givenName).toBe('Al');
    expect(r.emails).toEqual([{ value: 'w@x', type: 'work', display: 'Work' }]);
  });

  it('returns undefined when nothing changed', async () => {
    expect(await applyPatch(group(), { schemas: [PATCH_OP_SCHEMA], Operations: [{ op: 'remove', path: 'members[value eq "nobody"]' }] }, [])).toBeUndefined();
  });

  it.each([5, null, true, { a: 1 }])('a path of %p is 400 invalidPath', async (path) => {
    await expect(applyPatch(group(), { schemas: [PATCH_OP_SCHEMA], Operations: [{ op: 'replace', path, value: 'x' }] }, [])).rejects.toMatchObject({ status: 400, scimType: 'invalidPath' });
  });

  it('an error names the operation that failed', async () => {
    const ops = [{ op: 'replace', path: 'displayName', value: 'A' }, { op: 'replace', path: 'noSuchAttribute', value: 'B' }];
    await expect(applyPatch(group(), { schemas: [PATCH_OP_SCHEMA], Operations: ops }, [])).rejects.toMatchObject({ message: expect.stringContaining('operation 2') });
  });
});
