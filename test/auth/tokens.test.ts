import { exportJWK, generateKeyPair, importJWK, SignJWT, UnsecuredJWT } from 'jose';
import { InvalidTokenError } from '../../server/auth/errors';
import { bearerToken, signAccessToken, verifyAccessToken, type VerificationKey } from '../../server/auth/tokens';

describe('access tokens', () => {
  const issuer = 'https://crypto.example.com';
  const audience = 'https://crypto.example.com/api';
  let ours: { kid: string; privateKey: VerificationKey; publicKey: VerificationKey };
  let other: { privateKey: VerificationKey; publicKey: VerificationKey };
  const resolveKey = async (kid: string) => (kid === ours.kid ? ours.publicKey : undefined);

  beforeAll(async () => {
    const a = await generateKeyPair('ES256', { extractable: true });
    ours = { kid: 'k1', ...a };
    other = await generateKeyPair('ES256');
  });

  const issue = (over: Partial<Parameters<typeof signAccessToken>[0]> = {}) =>
    signAccessToken({ kid: ours.kid, privateKey: ours.privateKey, userId: 'u1', clientId: 'web', issuer, audience, ttlSeconds: 300, ...over });

  test('round trip', async () => {
    const { token, expiresIn } = await issue();
    expect(expiresIn).toBe(300);
    const claims = await verifyAccessToken(token, { issuer, audience, resolveKey });
    expect(claims).toMatchObject({ sub: 'u1', client_id: 'web', iss: issuer, aud: audience });
    expect(JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString())).toEqual({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' });
  });

  test('refuses alg none', async () => {
    const none = new UnsecuredJWT({ client_id: 'web', jti: 'x' }).setSubject('u1').setIssuer(issuer).setAudience(audience).setIssuedAt().setExpirationTime('5m').encode();
    await expect(verifyAccessToken(none, { issuer, audience, resolveKey })).rejects.toThrow(InvalidTokenError);
    // Same with a kid that we do publish.
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: 'k1' })).toString('base64url');
    const forged = `${header}.${none.split('.')[1]}.`;
    await expect(verifyAccessToken(forged, { issuer, audience, resolveKey })).rejects.toThrow(/algorithm/);
  });

  test('refuses a token signed with another key, even under our kid', async () => {
    const forged = await new SignJWT({ client_id: 'web' })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
      .setSubject('u1').setIssuer(issuer).setAudience(audience).setIssuedAt().setExpirationTime('5m').setJti('j')
      .sign(other.privateKey);
    await expect(verifyAccessToken(forged, { issuer, audience, resolveKey })).rejects.toThrow(/signature does not verify/);
    const unknownKid = await issue({ kid: 'nope' });
    await expect(verifyAccessToken(unknownKid.token, { issuer, audience, resolveKey })).rejects.toThrow(/does not publish/);
  });

  test('refuses HS256 with our public key as the HMAC secret (key confusion)', async () => {
    const jwk = await exportJWK(ours.publicKey);
    const secret = new TextEncoder().encode(JSON.stringify(jwk));
    const forged = await new SignJWT({ client_id: 'web' })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' })
      .setSubject('u1').setIssuer(issuer).setAudience(audience).setIssuedAt().setExpirationTime('5m').setJti('j')
      .sign(secret);
    await expect(verifyAccessToken(forged, { issuer, audience, resolveKey })).rejects.toThrow(/algorithm/);
  });

  test('refuses expired, wrong audience, wrong issuer, wrong typ', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await issue({ now: now - 3600 });
    await expect(verifyAccessToken(expired.token, { issuer, audience, resolveKey })).rejects.toThrow(/expired/);
    const aud = await issue({ audience: 'https://other.example.com' });
    await expect(verifyAccessToken(aud.token, { issuer, audience, resolveKey })).rejects.toThrow(/audience/);
    const iss = await issue({ issuer: 'https://evil.example.com' });
    await expect(verifyAccessToken(iss.token, { issuer, audience, resolveKey })).rejects.toThrow(/issuer/);
    const idToken = await new SignJWT({ client_id: 'web' })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: 'k1' })
      .setSubject('u1').setIssuer(issuer).setAudience(audience).setIssuedAt().setExpirationTime('5m').setJti('j')
      .sign(ours.privateKey);
    await expect(verifyAccessToken(idToken, { issuer, audience, resolveKey })).rejects.toThrow(/typ/);
  });

  test('a public JWK imported again still verifies (what JWKS consumers do)', async () => {
    const { token } = await issue();
    const pub = await importJWK(await exportJWK(ours.publicKey), 'ES256');
    await expect(verifyAccessToken(token, { issuer, audience, resolveKey: async () => pub as VerificationKey })).resolves.toMatchObject({ sub: 'u1' });
  });

  test('Authorization header parsing', () => {
    expect(bearerToken('Bearer a.b.c')).toBe('a.b.c');
    expect(() => bearerToken(undefined)).toThrow(/required/);
    expect(() => bearerToken('Basic abc')).toThrow(/Bearer/);
    expect(() => bearerToken('Bearer a.b')).toThrow(/Bearer/);
  });
});
