/**
 * SCIM bodies leave as UTF-8 chunks (scim/json-body.ts, issue 10): a list envelope resource by
 * resource. Whatever the body, the chunks together must be the bytes of JSON.stringify(body).
 */
import { jsonChunks } from '../../scim/json-body';

const LIST = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
const user = (i: number, extra: Record<string, unknown> = {}) => ({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], id: `u${i}`, userName: `user-${i}`, meta: { created: new Date(Date.UTC(2026, 0, i + 1)) }, ...extra });
const list = (resources: unknown[]) => ({ schemas: [LIST], totalResults: resources.length, startIndex: 1, itemsPerPage: resources.length, Resources: resources });

class Envelope {
  schemas = [LIST];
  Resources = [user(1)];
}

const bodies: [string, unknown][] = [
  ['a list page', list([user(1), user(2), user(3)])],
  ['a list of one', list([user(1)])],
  ['an empty list', list([])],
  ['non-ASCII text (2-, 3- and 4-byte UTF-8, a lone surrogate)', list([user(1, { displayName: 'Zoë 名前 🔑' }), user(2, { userName: 'bad \ud800 half' })])],
  ['members with no JSON form are null, as in any array', list([user(1), undefined, () => 1, Symbol('s'), null, user(2)])],
  ['members that are not objects', list(['a', 1, true, [user(1)]])],
  ['Resources alone', { Resources: [user(1), user(2)] }],
  ['integer-like keys, which JSON puts first', { schemas: [LIST], 2: 'two', 1: 'one', Resources: [user(1)] }],
  ['an undefined member before Resources', { schemas: [LIST], totalResults: undefined, Resources: [user(1)] }],
  ['Resources not the last member', { schemas: [LIST], Resources: [user(1)], totalResults: 1 }],
  ['Resources not an array', { schemas: [LIST], Resources: { a: user(1) } }],
  ['Resources undefined', { schemas: [LIST], Resources: undefined }],
  ['an envelope with toJSON', { schemas: [LIST], toJSON: () => ({ other: true }), Resources: [user(1)] }],
  ['Resources with toJSON', { schemas: [LIST], Resources: Object.assign([user(1)], { toJSON: () => 'replaced' }) }],
  ['a class instance', new Envelope()],
  ['a single resource', user(1, { displayName: 'Ünïcode' })],
  ['an array', [user(1), user(2)]],
  ['a string', 'é'],
  ['null', null],
];

describe('jsonChunks(body) ≡ Buffer.from(JSON.stringify(body))', () => {
  it.each(bodies)('%s', (_name, body) => {
    const chunks = jsonChunks(body);
    expect(Buffer.concat(chunks).toString('latin1')).toBe(Buffer.from(JSON.stringify(body) ?? '').toString('latin1'));
  });

  it('a list page is one chunk per resource, the envelope in the first and the last', () => {
    const chunks = jsonChunks(list([user(1), user(2), user(3)]));
    expect(chunks.map((c) => c.toString())).toEqual([
      `{"schemas":["${LIST}"],"totalResults":3,"startIndex":1,"itemsPerPage":3,"Resources":[${JSON.stringify(user(1))}`,
      `,${JSON.stringify(user(2))}`,
      `,${JSON.stringify(user(3))}]}`,
    ]);
  });
});
