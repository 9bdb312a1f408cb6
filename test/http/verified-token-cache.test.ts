import { generateKeyPair } from 'jose';
import { InvalidTokenError } from '../../server/auth/errors';
import { signAccessToken, verifyAccessToken, VerifiedTokenCache, type VerificationKey } from '../../server/auth/tokens';

/**
 * The verified-token cache (issue 10) skips a repeat signature check, and nothing else: a cached
 * token still expires on time, still ends when its key is withdrawn from the published set, and a
 * token that differs in any byte is verified from scratch.
 */
describe('verified-token cache', () => {
  const issuer = 'https://crypto.example.com';
  const audience = 'https://crypto.example.com/api';
  let key: { privateKey: VerificationKey; publicKey: VerificationKey };
  let published: Map<string, VerificationKey>;
  const resolveKey = async (kid: string) => published.get(kid);
  const now = 1_800_000_000;
  const issue = () => signAccessToken({ kid: 'k1', privateKey: key.privateKey, userId: 'u1', clientId: 'web', issuer, audience, ttlSeconds: 300, now });

  beforeAll(async () => {
    key = await generateKeyPair('ES256');
  });
  beforeEach(() => {
    published = new Map([['k1', key.publicKey]]);
  });

  test('a repeat is answered from the cache with the same claims', async () => {
    const cache = new VerifiedTokenCache();
    const { token } = await issue();
    const first = await verifyAccessToken(token, { issuer, audience, resolveKey, now, cache });
    expect(cache.size).toBe(1);
    const again = await verifyAccessToken(token, { issuer, audience, resolveKey, now: now + 10, cache });
    expect(again).toEqual(first);
  });

  test('a cached token expires on time', async () => {
    const cache = new VerifiedTokenCache();
    const { token } = await issue();
    await verifyAccessToken(token, { issuer, audience, resolveKey, now, cache });
    await expect(verifyAccessToken(token, { issuer, audience, resolveKey, now: now + 300 + 6, cache })).rejects.toThrow(/expired/);
    expect(cache.size).toBe(0);
  });

  test('a cached token ends when its key is no longer published (or is replaced under the same kid)', async () => {
    const cache = new VerifiedTokenCache();
    const { token } = await issue();
    await verifyAccessToken(token, { issuer, audience, resolveKey, now, cache });
    published.delete('k1');
    await expect(verifyAccessToken(token, { issuer, audience, resolveKey, now, cache })).rejects.toThrow(InvalidTokenError);

    published.set('k1', key.publicKey);
    await verifyAccessToken(token, { issuer, audience, resolveKey, now, cache });
    published.set('k1', (await generateKeyPair('ES256')).publicKey);
    await expect(verifyAccessToken(token, { issuer, audience, resolveKey, now, cache })).rejects.toThrow(/signature/);
  });

  test('a token altered in its signature is not a cache hit', async () => {
    const cache = new VerifiedTokenCache();
    const { token } = await issue();
    await verifyAccessToken(token, { issuer, audience, resolveKey, now, cache });
    const sig = token.split('.')[2]!;
    const flipped = `${token.slice(0, token.length - sig.length)}${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`;
    await expect(verifyAccessToken(flipped, { issuer, audience, resolveKey, now, cache })).rejects.toThrow(InvalidTokenError);
  });

  test('a refused token is never cached, and the cache is bounded', async () => {
    const cache = new VerifiedTokenCache(2);
    const { token } = await issue();
    await expect(verifyAccessToken(token, { issuer, audience: 'elsewhere', resolveKey, now, cache })).rejects.toThrow(/audience/);
    expect(cache.size).toBe(0);
    for (let i = 0; i < 3; i++) {
      const t = await signAccessToken({ kid: 'k1', privateKey: key.privateKey, userId: `u${i}`, clientId: 'web', issuer, audience, ttlSeconds: 300, now });
      await verifyAccessToken(t.token, { issuer, audience, resolveKey, now, cache });
    }
    expect(cache.size).toBe(2);
  });
});
