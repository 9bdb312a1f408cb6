import request from 'supertest';
import { SigningKeyService } from '../../server/auth/signing-keys';
import { signAccessToken, verifyAccessToken } from '../../server/auth/tokens';
import { createApp } from '../../server/http/app';
import { KmsUnavailableError } from '../../server/errors';
import { createTestContext, type TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import { SwitchableKms } from './support';

/**
 * Publishing keys and verifying tokens read stored public JWKs only: with the KMS down they keep
 * working (after any cache has expired); only issuing a token unwraps the private signing key.
 */
describe.each(testDatabaseNames())('token keys with the KMS down (%s)', (kind) => {
  let ctx: TestContext;
  const KEK = 'local://shared';
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  const service = (kms: SwitchableKms) => new SigningKeyService(ctx.store, kms.registry([KEK]), { kekUri: KEK, rotationDays: 30, tokenTtlSeconds: 300, cacheMs: 0 });

  test('rotation wraps before its transaction; JWKS and verification then need no KMS; signing needs it', async () => {
    const kms = new SwitchableKms(ctx.store);
    const first = service(kms);
    const key = await first.signingKey({ actor: 'test' });
    expect(kms.calls.wrap).toBe(1);
    expect(kms.duringTransaction.length).toBeGreaterThan(0);
    expect(kms.duringTransaction.every((open) => open === false)).toBe(true);
    const { token } = await signAccessToken({ ...key, userId: 'u1', clientId: 'web', issuer: 'iss', audience: 'aud', ttlSeconds: 300 });

    // A fresh replica (empty cache) while the KMS is down.
    kms.down = true;
    const before = kms.total;
    const replica = service(kms);
    expect((await replica.jwks()).keys.map((k) => k.kid)).toEqual([key.kid]);
    const claims = await verifyAccessToken(token, { issuer: 'iss', audience: 'aud', resolveKey: (kid) => replica.verificationKey(kid) });
    expect(claims.sub).toBe('u1');
    expect(kms.total).toBe(before);

    // Issuing is the one step that needs the KMS, and it says so with a 503-class error.
    await expect(replica.signingKey({ actor: 'test' })).rejects.toBeInstanceOf(KmsUnavailableError);
    kms.down = false;
    await expect(replica.signingKey({ actor: 'test' })).resolves.toMatchObject({ kid: key.kid });
  });

  test('concurrent first token requests share one unwrap of the private signing key', async () => {
    const kms = new SwitchableKms(ctx.store);
    const kid = await service(kms).rotate({ actor: 'test' });
    const replica = service(kms);
    const before = kms.calls.unwrap;
    const keys = await Promise.all([1, 2, 3].map(() => replica.signingKey({ actor: 'test' })));
    expect(keys.map((k) => k.kid)).toEqual([kid, kid, kid]);
    expect(kms.calls.unwrap - before).toBe(1);
  });

  test('GET /.well-known/jwks.json answers 200 from a new app while every KMS call fails', async () => {
    const kms = new SwitchableKms(ctx.store);
    await service(kms).rotate({ actor: 'test' }); // a key exists, wrapped by this KMS
    kms.down = true;
    const before = kms.total;
    const app = createApp({ ...ctx, kms: kms.registry([KEK]) });
    const r = await request(app).get('/.well-known/jwks.json').expect(200);
    expect(r.body.keys.length).toBeGreaterThan(0);
    expect(r.body.keys.every((k: Record<string, unknown>) => k.d === undefined)).toBe(true);
    expect(kms.total).toBe(before);
  });
});
