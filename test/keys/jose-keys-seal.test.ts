/**
 * sealUnderSymmetricKey builds its JWE (A256KW + A256GCM, compact) on node:crypto and the kid of a
 * generated key pair is hashed synchronously (issue 10). Both must stay what jose produces and
 * reads: jose opens every seal to the same JWK, refuses it under another key or with any part
 * changed, and the thumbprints equal jose's calculateJwkThumbprint.
 */
import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, compactDecrypt, decodeProtectedHeader, exportJWK, generateKeyPair as joseGenerateKeyPair, type JWK } from 'jose';
import { generateKeyPair, jwkThumbprint, openUnderSymmetricKey, sealUnderSymmetricKey } from '../../server/keys/jose-keys';

const ALGS = ['ec-p256', 'ec-p384', 'rsa-2048'] as const;

describe('sealUnderSymmetricKey', () => {
  it.each(ALGS)('%s: jose opens the seal to the same private JWK, with the JWE header of docs/wire-formats.md', async (alg) => {
    const { privateJwk } = await generateKeyPair(alg);
    const key = randomBytes(32);
    const jwe = await sealUnderSymmetricKey(privateJwk, key);
    expect(await openUnderSymmetricKey(jwe, key)).toEqual(privateJwk);
    expect(decodeProtectedHeader(jwe)).toEqual({ alg: 'A256KW', enc: 'A256GCM', cty: 'jwk+json', kid: privateJwk.kid });
    const [, encryptedKey, iv, , tag] = jwe.split('.').map((p) => Buffer.from(p, 'base64url'));
    expect([encryptedKey!.length, iv!.length, tag!.length]).toEqual([40, 12, 16]);
    const { protectedHeader } = await compactDecrypt(jwe, key, { keyManagementAlgorithms: ['A256KW'], contentEncryptionAlgorithms: ['A256GCM'] });
    expect(protectedHeader.kid).toBe(privateJwk.kid);
  });

  it('uses a fresh content key and IV for every seal', async () => {
    const { privateJwk } = await generateKeyPair('ec-p256');
    const key = randomBytes(32);
    const [a, b] = [await sealUnderSymmetricKey(privateJwk, key), await sealUnderSymmetricKey(privateJwk, key)];
    const parts = (j: string) => j.split('.');
    expect(parts(a)[0]).toBe(parts(b)[0]);
    for (const i of [1, 2, 3, 4]) expect(parts(a)[i]).not.toBe(parts(b)[i]);
  });

  it('does not open under another key, nor with the header, wrapped key, IV, ciphertext or tag changed', async () => {
    const { privateJwk } = await generateKeyPair('ec-p256');
    const key = randomBytes(32);
    const jwe = await sealUnderSymmetricKey(privateJwk, key);
    await expect(openUnderSymmetricKey(jwe, randomBytes(32))).rejects.toThrow();
    const otherHeader = Buffer.from(JSON.stringify({ alg: 'A256KW', enc: 'A256GCM', cty: 'jwk+json', kid: 'other' })).toString('base64url');
    const parts = jwe.split('.');
    await expect(openUnderSymmetricKey([otherHeader, ...parts.slice(1)].join('.'), key)).rejects.toThrow();
    for (const i of [1, 2, 3, 4]) {
      const bytes = Buffer.from(parts[i]!, 'base64url');
      bytes[0] ^= 1;
      const changed = [...parts];
      changed[i] = bytes.toString('base64url');
      await expect(openUnderSymmetricKey(changed.join('.'), key)).rejects.toThrow();
    }
  });

  it('refuses a key that is not 256 bits', async () => {
    const { privateJwk } = await generateKeyPair('ec-p256');
    await expect(sealUnderSymmetricKey(privateJwk, randomBytes(16))).rejects.toThrow(/256-bit/);
  });
});

describe('jwkThumbprint', () => {
  it.each(ALGS)('%s: the kid of a generated pair is jose’s RFC 7638 thumbprint of its public key', async (alg) => {
    const { publicJwk, privateJwk } = await generateKeyPair(alg);
    const { kty, crv, x, y, e, n } = publicJwk;
    const bare = Object.fromEntries(Object.entries({ kty, crv, x, y, e, n }).filter(([, v]) => v !== undefined)) as JWK;
    expect(publicJwk.kid).toBe(await calculateJwkThumbprint(bare, 'sha256'));
    expect(privateJwk.kid).toBe(publicJwk.kid);
  });

  it('matches jose for keys jose generated, whatever other members the JWK carries', async () => {
    for (const [alg, options] of [['ES256', {}], ['ES512', {}], ['RS256', { modulusLength: 2048 }]] as const) {
      const jwk = { ...(await exportJWK((await joseGenerateKeyPair(alg, { ...options, extractable: true })).publicKey)), alg: 'x', use: 'enc', kid: 'ignored' };
      expect(jwkThumbprint(jwk)).toBe(await calculateJwkThumbprint(jwk, 'sha256'));
    }
  });

  it('refuses a JWK without the members a thumbprint needs', () => {
    expect(() => jwkThumbprint({ kty: 'EC', crv: 'P-256', x: 'AA' })).toThrow(TypeError);
    expect(() => jwkThumbprint({ kty: 'oct', k: 'AA' })).toThrow(TypeError);
  });
});
