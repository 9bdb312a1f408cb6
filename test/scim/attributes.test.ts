import { selectAttributes } from '../../scim/attributes';

const ENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const r = {
  schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', ENT],
  id: 'u1',
  userName: 'a@x',
  name: { givenName: 'A', familyName: 'B' },
  emails: [{ value: 'a@x', type: 'work' }],
  meta: { resourceType: 'User' },
  [ENT]: { department: 'R&D', employeeNumber: '1' },
};

describe('attributes / excludedAttributes', () => {
  it('attributes keeps id and schemas plus what was asked, including sub- and extension attributes', () => {
    expect(selectAttributes(r, { attributes: ['userName', 'name.givenName', `${ENT}:department`, 'emails.value'] })).toEqual({
      schemas: r.schemas,
      id: 'u1',
      userName: 'a@x',
      name: { givenName: 'A' },
      emails: [{ value: 'a@x' }],
      [ENT]: { department: 'R&D' },
    });
    expect(selectAttributes(r, { attributes: ['urn:ietf:params:scim:schemas:core:2.0:User:USERNAME'] })).toEqual({ schemas: r.schemas, id: 'u1', userName: 'a@x' });
  });

  it('excludedAttributes removes, never id', () => {
    const out = selectAttributes(r, { excluded: ['emails', 'name.familyName', ENT, 'id'] });
    expect(out).toEqual({ schemas: r.schemas, id: 'u1', userName: 'a@x', name: { givenName: 'A' }, meta: { resourceType: 'User' } });
    expect(r.name.familyName).toBe('B'); // input untouched
  });
});
