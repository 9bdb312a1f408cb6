import { randomBytes } from 'node:crypto';
import { decodeProtectedHeader } from 'jose';
import { generateKeyPair, openWithPrivateKey, sealToPublicKey } from '../../server/keys/jose-keys';

/**
 * sealToPublicKey keeps imported recipient keys by their exact JWK text (a rotation seals to every
 * member). The cache must never change what is sealed: a fresh ephemeral key per JWE, the key
 * named by the whole JWK (not its kid), and a JWK that does not import fails every time.
 */
describe('sealing to public keys with imported keys reused', () => {
  test.each(['ec-p256', 'rsa-2048'] as const)('%s: the same JWK text twice gives two different JWEs, both opening to the key', async (alg) => {
    const pair = await generateKeyPair(alg);
    const text = JSON.stringify(pair.publicJwk);
    const key = randomBytes(32);
    const [a, b] = [await sealToPublicKey(key, text, { keyId: 'group:g' }), await sealToPublicKey(key, text, { keyId: 'group:g' })];
    expect(a).not.toBe(b);
    if (alg === 'ec-p256') expect(decodeProtectedHeader(a).epk).not.toEqual(decodeProtectedHeader(b).epk); // new ephemeral key each time
    expect(decodeProtectedHeader(a)).toMatchObject({ alg: pair.publicJwk.alg, enc: 'A256GCM', cty: 'jwk+json', kid: pair.publicJwk.kid });
    expect((await openWithPrivateKey(a, pair.privateJwk)).equals(key)).toBe(true);
    expect((await openWithPrivateKey(b, pair.privateJwk)).equals(key)).toBe(true);
    // An object and its text are the same recipient.
    expect((await openWithPrivateKey(await sealToPublicKey(key, pair.publicJwk, { keyId: 'group:g' }), pair.privateJwk)).equals(key)).toBe(true);
  });

  test('another key with the same kid is another recipient: only its own private key opens the JWE', async () => {
    const [first, second] = [await generateKeyPair('ec-p256'), await generateKeyPair('ec-p256')];
    const key = randomBytes(32);
    await sealToPublicKey(key, JSON.stringify(first.publicJwk), { keyId: 'group:g' }); // cached
    const lookalike = JSON.stringify({ ...second.publicJwk, kid: first.publicJwk.kid });
    const jwe = await sealToPublicKey(key, lookalike, { keyId: 'group:g' });
    expect((await openWithPrivateKey(jwe, second.privateJwk)).equals(key)).toBe(true);
    await expect(openWithPrivateKey(jwe, first.privateJwk)).rejects.toThrow();
  });

  test('a JWK that does not import fails, and fails again (no failure is kept as a key)', async () => {
    const pair = await generateKeyPair('ec-p256');
    const broken = JSON.stringify({ ...pair.publicJwk, x: 'AAAA' });
    await expect(sealToPublicKey(randomBytes(32), broken, { keyId: 'group:g' })).rejects.toThrow();
    await expect(sealToPublicKey(randomBytes(32), broken, { keyId: 'group:g' })).rejects.toThrow();
  });
});
