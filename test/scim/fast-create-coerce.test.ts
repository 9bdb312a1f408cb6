/**
 * scim/coerce.ts answers exactly what scimmy's schema instance answers (`new Schema(body, 'in')`,
 * serialised): same resource for the IdP bodies and their variants, same SCIM error (status,
 * scimType, message) for bodies scimmy refuses.
 */
import { coerceInbound } from '../../scim/coerce';
import { normaliseResourceBody } from '../../scim/idp-quirks';
import { SCIMMY } from '../../scim/schemas';
import { ENTRA_CREATE_GROUP, ENTRA_CREATE_USER, ENTRA_PROVISION_USER, OKTA_CREATE_GROUP, OKTA_CREATE_USER } from './idp-bodies';

type Json = Record<string, unknown>;
const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

const slow = (schema: typeof SCIMMY.Schemas.User | typeof SCIMMY.Schemas.Group, body: Json): Json => JSON.parse(JSON.stringify(new schema(body, 'in'))) as Json;

function outcome(run: () => Json): { ok: Json } | { error: { name: string; status?: unknown; scimType?: unknown; message: string } } {
  try {
    return { ok: run() };
  } catch (err) {
    const e = err as Error & { status?: unknown; scimType?: unknown };
    return { error: { name: e.constructor.name, status: e.status, scimType: e.scimType, message: e.message } };
  }
}

const userBodies: [string, Json][] = [
  ['Entra create', JSON.parse(ENTRA_CREATE_USER) as Json],
  ['Entra provision (enterprise attributes: full path)', JSON.parse(ENTRA_PROVISION_USER) as Json],
  ['Okta create (password, groups)', JSON.parse(OKTA_CREATE_USER) as Json],
  ['no schemas', { userName: 'a@example.com' }],
  ['mixed-case attribute names', { schemas: [USER], USERNAME: 'b@example.com', Name: { GivenName: 'B' }, Emails: [{ Value: 'b@example.com', Type: 'work' }] }],
  ['all core attributes', {
    schemas: [USER], userName: 'c', displayName: 'C', nickName: 'cc', profileUrl: 'https://example.com/c', title: 't', userType: 'Employee',
    preferredLanguage: 'en', locale: 'en-US', timezone: 'Europe/Berlin', active: false,
    name: { formatted: 'f', familyName: 'F', givenName: 'G', middleName: 'M', honorificPrefix: 'Dr', honorificSuffix: 'III' },
    emails: [{ value: 'c@example.com', type: 'home', primary: true }, { value: 'c2@example.com', type: 'work' }],
    phoneNumbers: [{ value: '+49 1', type: 'mobile' }], ims: [{ value: 'c', type: 'xmpp' }], photos: [{ value: 'https://example.com/p.png', type: 'photo' }],
    addresses: [{ type: 'work', streetAddress: 's', locality: 'l', region: 'r', postalCode: 'p', country: 'DE', primary: true }],
    entitlements: [{ value: 'e' }], roles: [{ value: 'r', primary: true }], x509Certificates: [{ value: 'MIIB' }],
  }],
  ['enterprise schema listed, no values', { schemas: [USER, ENTERPRISE], userName: 'd' }],
  ['enterprise values, URN-prefixed', { schemas: [USER, ENTERPRISE], userName: 'e', [`${ENTERPRISE}:department`]: 'Sales' }],
  ['enterprise object', { schemas: [USER, ENTERPRISE], userName: 'f', [ENTERPRISE]: { employeeNumber: '7', manager: { value: 'm' } } }],
  ['id and meta sent by the client', { schemas: [USER], id: 'client-id', userName: 'g', meta: { resourceType: 'User', created: '2020-01-01T00:00:00Z' } }],
  // Refused the same way:
  ['core schema missing', { schemas: [ENTERPRISE], userName: 'h' }],
  ['userName a number', { schemas: [USER], userName: 5 }],
  ['active a string', { schemas: [USER], userName: 'i', active: 'yes' }],
  ['emails not a list', { schemas: [USER], userName: 'j', emails: 'j@example.com' }],
  ['two primary emails', { schemas: [USER], userName: 'k', emails: [{ value: 'a', primary: true }, { value: 'b', primary: true }] }],
  ['name a string', { schemas: [USER], userName: 'l', name: 'L' }],
  ['no userName', { schemas: [USER], displayName: 'no user name' }],
];

const groupBodies: [string, Json][] = [
  ['Entra create', JSON.parse(ENTRA_CREATE_GROUP) as Json],
  ['Okta create', JSON.parse(OKTA_CREATE_GROUP) as Json],
  ['members', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'G', members: [{ value: 'u1', display: 'U 1' }, { value: 'u2' }] }],
  ['displayName a list', { displayName: ['x'] }],
  ['core schema missing (raw body)', { schemas: [ENTERPRISE], displayName: 'G' }],
];

describe('coerceInbound matches scimmy schema instances', () => {
  it.each(userBodies)('User: %s', (_name, body) => {
    // The service coerces what normaliseResourceBody leaves (IdP quirks removed); compare on that.
    // Where normalising refuses the body already, compare on the raw body.
    const normalised = outcome(() => normaliseResourceBody(body, SCIMMY.Schemas.User.definition));
    const input = 'ok' in normalised ? normalised.ok : body;
    const expected = outcome(() => slow(SCIMMY.Schemas.User, structuredClone(input)));
    expect(outcome(() => coerceInbound(SCIMMY.Schemas.User, structuredClone(input)))).toEqual(expected);
  });

  it.each(groupBodies)('Group: %s', (_name, body) => {
    // Where normalising refuses the body already, compare on the raw body.
    const normalised = outcome(() => normaliseResourceBody(body, SCIMMY.Schemas.Group.definition));
    const input = 'ok' in normalised ? normalised.ok : body;
    const expected = outcome(() => slow(SCIMMY.Schemas.Group, structuredClone(input)));
    expect(outcome(() => coerceInbound(SCIMMY.Schemas.Group, structuredClone(input)))).toEqual(expected);
  });

  it('refuses what scimmy refuses (the cases above include refusals)', () => {
    const refused = userBodies.filter(([, b]) => 'error' in outcome(() => slow(SCIMMY.Schemas.User, normaliseResourceBody(b, SCIMMY.Schemas.User.definition))));
    expect(refused.length).toBeGreaterThanOrEqual(5);
  });

  it('never returns the password', () => {
    const out = coerceInbound(SCIMMY.Schemas.User, normaliseResourceBody(JSON.parse(OKTA_CREATE_USER) as Json, SCIMMY.Schemas.User.definition));
    expect(out.password).toBeUndefined();
    expect(out.userName).toBe('test.user@okta.local');
  });
});
