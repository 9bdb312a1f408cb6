import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hkdfSync } from 'node:crypto';
import { canonicalContext } from '../kms-adapters/associated-data';
import { decodeEnvelope, encodeEnvelope } from '../kms-adapters/envelope';
import { LocalAdapter } from '../kms-adapters/local';
import { openUnderSymmetricKey } from '../server/keys/jose-keys';
import { binding } from '../server/keys/binding';
import { KmsRequestError, MalformedEnvelopeError, UnwrapRefusedError } from '../server/errors';

/** The vectors published in docs/test-vectors.json: if these fail, the wire format changed. */
const v = JSON.parse(readFileSync(join(__dirname, '..', 'docs', 'test-vectors.json'), 'utf8'));
const hex = (s: string) => Buffer.from(s, 'hex');

describe('wire formats (docs/wire-formats.md)', () => {
  test('associated data: sorted-key compact JSON, whatever the insertion order', () => {
    expect(canonicalContext(v.associatedData.context).toString('utf8')).toBe(v.associatedData.canonical);
    expect(canonicalContext(binding.passwordKey(v.associatedData.context.user)).toString('utf8')).toBe(v.associatedData.canonical);
  });

  test('group membership keys: version 1 binds the group only (as before versions), later versions the version too', () => {
    const g = v.groupMembershipKeyBinding;
    expect(canonicalContext(binding.membershipKey(g.group)).toString('utf8')).toBe(g.version1);
    expect(canonicalContext(binding.membershipKey(g.group, 1)).toString('utf8')).toBe(g.version1);
    expect(canonicalContext(binding.membershipKey(g.group, 2)).toString('utf8')).toBe(g.version2);
  });

  test('associated data refuses missing purpose, odd keys and non-string values', () => {
    expect(() => canonicalContext({ user: 'x' } as never)).toThrow(KmsRequestError);
    expect(() => canonicalContext({ purpose: 'p', '1': 'x' } as never)).toThrow(KmsRequestError);
    expect(() => canonicalContext({ purpose: 'p', User: 'x' } as never)).toThrow(KmsRequestError);
    expect(() => canonicalContext({ purpose: 'p', user: 7 } as never)).toThrow(KmsRequestError);
  });

  test('local KEK derivation: HKDF-SHA256(master, empty salt, info)', () => {
    const kek = Buffer.from(hkdfSync('sha256', hex(v.localKek.masterKey), Buffer.alloc(0), v.localKek.hkdfInfo, 32));
    expect(kek.toString('hex')).toBe(v.localKek.derivedKek);
  });

  test('envelope v1 decodes to the published fields and round-trips byte for byte', () => {
    const e = decodeEnvelope(v.envelope.envelope);
    expect(e).toMatchObject({ version: 'cs1', kekUri: v.localKek.keyUri, keyVersion: undefined });
    expect(e.ciphertext.toString('hex')).toBe(v.envelope.iv + v.envelope.ciphertext + v.envelope.tag);
    expect(encodeEnvelope(e)).toBe(v.envelope.envelope);
  });

  test('the published local envelope opens with the published master key and context only', async () => {
    const adapter = new LocalAdapter(hex(v.localKek.masterKey));
    const e = decodeEnvelope(v.envelope.envelope);
    expect((await adapter.unwrap(e.kekUri, e.ciphertext, v.associatedData.context)).toString('hex')).toBe(v.envelope.plaintext);
    await expect(adapter.unwrap(e.kekUri, e.ciphertext, { ...v.associatedData.context, user: 'someone-else' })).rejects.toBeInstanceOf(UnwrapRefusedError);
  });

  test('the published private-key JWE opens under the published password key', async () => {
    expect(await openUnderSymmetricKey(v.privateKeyJwe.jwe, hex(v.privateKeyJwe.passwordKey))).toEqual(v.privateKeyJwe.privateJwk);
  });

  test.each([
    ['', /non-empty/],
    ['cs2.a.b.c', /unknown wrapped key format/],
    ['cs1.a.b', /four base64url fields/],
    ['cs1.a+b.c.d', /four base64url fields/],
    ['cs1..Yg.Yw', /names no KEK/],
    ['cs1.YQ.Yg.', /carries no ciphertext/],
  ])('malformed envelope %j is refused', (text, message) => {
    expect(() => decodeEnvelope(text)).toThrow(MalformedEnvelopeError);
    expect(() => decodeEnvelope(text)).toThrow(message);
  });
});
