import { generateKeyPair as nodeGenerateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, CompactEncrypt, compactDecrypt, importJWK, type JWK } from 'jose';
import type { UserKeyAlgorithm } from '../config/core';

/**
 * Key pairs and JWE profiles towards clients (docs/wire-formats.md):
 * - public keys: JWK with alg, use "enc" and kid = RFC 7638 thumbprint;
 * - private keys under a symmetric key (password key, membership key): JWE compact,
 *   alg A256KW, enc A256GCM, cty "jwk+json";
 * - a symmetric key to a member's public key: JWE compact, alg RSA-OAEP-256 or ECDH-ES+A256KW
 *   (from the recipient JWK), enc A256GCM, payload an "oct" JWK.
 */
const generate = promisify(nodeGenerateKeyPair);

export interface KeyPairJwk {
  publicJwk: JWK;
  privateJwk: JWK;
}

export async function generateKeyPair(alg: UserKeyAlgorithm): Promise<KeyPairJwk> {
  // node:crypto generates on the libuv thread pool, so RSA key generation does not block requests.
  const [type, param] = alg.split('-') as ['ec' | 'rsa', string];
  const pair =
    type === 'rsa'
      ? await generate('rsa', { modulusLength: Number(param) })
      : await generate('ec', { namedCurve: param === 'p384' ? 'P-384' : 'P-256' });
  const jweAlg = type === 'rsa' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW';
  const publicJwk = pair.publicKey.export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  return {
    publicJwk: { ...publicJwk, alg: jweAlg, use: 'enc', kid },
    privateJwk: { ...(pair.privateKey.export({ format: 'jwk' }) as JWK), alg: jweAlg, use: 'enc', kid },
  };
}

/** A Buffer over the same memory (Buffer.from(Uint8Array) would copy key bytes that nobody zeroes). */
const view = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

function jwkBytes(jwk: JWK): Buffer {
  return Buffer.from(JSON.stringify(jwk), 'utf8');
}

/** Encrypts a private JWK under a 256-bit symmetric key (A256KW + A256GCM). */
export async function sealUnderSymmetricKey(privateJwk: JWK, key: Uint8Array): Promise<string> {
  const payload = jwkBytes(privateJwk);
  try {
    return await new CompactEncrypt(payload)
      .setProtectedHeader({ alg: 'A256KW', enc: 'A256GCM', cty: 'jwk+json', kid: privateJwk.kid })
      .encrypt(key);
  } finally {
    payload.fill(0);
  }
}

export async function openUnderSymmetricKey(jwe: string, key: Uint8Array): Promise<JWK> {
  const { plaintext } = await compactDecrypt(jwe, key, { keyManagementAlgorithms: ['A256KW'], contentEncryptionAlgorithms: ['A256GCM'] });
  try {
    return JSON.parse(view(plaintext).toString('utf8')) as JWK;
  } finally {
    plaintext.fill(0);
  }
}

interface Recipient {
  key: Awaited<ReturnType<typeof importJWK>>;
  alg: string;
  kid?: string;
}

/**
 * Imported recipient public keys by their exact JWK text. A rotation seals to every member and
 * importing each JWK again was ~10 % of a seal. Public keys only (nothing secret); a changed
 * key is another text, so another entry. Bounded: the least recently used goes first.
 */
const RECIPIENTS_MAX = 10_000;
const recipients = new Map<string, Promise<Recipient>>();

function recipientKey(recipient: JWK | string): Promise<Recipient> {
  const text = typeof recipient === 'string' ? recipient : JSON.stringify(recipient);
  const cached = recipients.get(text);
  if (cached) {
    recipients.delete(text);
    recipients.set(text, cached);
    return cached;
  }
  const jwk = typeof recipient === 'string' ? (JSON.parse(recipient) as JWK) : recipient;
  const alg = jwk.alg ?? (jwk.kty === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW');
  const imported = importJWK(jwk, alg).then((key) => ({ key, alg, kid: jwk.kid }));
  recipients.set(text, imported);
  // A JWK that does not import is not kept: the next call fails (and reports) the same way.
  imported.catch(() => recipients.get(text) === imported && recipients.delete(text));
  if (recipients.size > RECIPIENTS_MAX) recipients.delete(recipients.keys().next().value!);
  return imported;
}

/** Encrypts a symmetric key, as an "oct" JWK, to a recipient's public JWK (an object or its JSON text). */
export async function sealToPublicKey(key: Uint8Array, recipient: JWK | string, meta: { keyId: string }): Promise<string> {
  const { key: publicKey, alg, kid } = await recipientKey(recipient);
  const payload = jwkBytes({ kty: 'oct', k: view(key).toString('base64url'), alg: 'A256KW', kid: meta.keyId });
  try {
    return await new CompactEncrypt(payload).setProtectedHeader({ alg, enc: 'A256GCM', cty: 'jwk+json', kid }).encrypt(publicKey);
  } finally {
    payload.fill(0);
  }
}

/** Opens a JWE made by sealToPublicKey with the recipient's private JWK; returns the raw key. */
export async function openWithPrivateKey(jwe: string, privateJwk: JWK): Promise<Buffer> {
  const alg = privateJwk.alg ?? (privateJwk.kty === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW');
  const { plaintext } = await compactDecrypt(jwe, await importJWK(privateJwk, alg), { keyManagementAlgorithms: [alg] });
  try {
    const jwk = JSON.parse(view(plaintext).toString('utf8')) as JWK;
    return Buffer.from(String(jwk.k), 'base64url');
  } finally {
    plaintext.fill(0);
  }
}
