import { createTestContext, type TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import { codeDigest, newAuthorizationCode } from '../../server/auth/pkce';

/** The one-time rules of sign-in state hold on every database, also under concurrent use. */
describe.each(testDatabaseNames())('sign-in state on %s', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  const pending = { clientId: 'web', redirectUri: 'https://app.example.com/cb', codeChallenge: 'c'.repeat(43), state: 's1' };

  test('a SAML request is consumed once, even by racing callers', async () => {
    const repo = ctx.store.repos.samlRequests;
    const now = new Date();
    await repo.save({ id: '_req1', issuedAt: now.toISOString(), expiresAt: new Date(now.getTime() + 60_000), pending });
    expect(await repo.peek('_req1', now)).toMatchObject({ id: '_req1', pending });
    const results = await Promise.all(Array.from({ length: 5 }, () => repo.consume('_req1', new Date())));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => !r.ok).map((r) => (r.ok ? '' : r.reason))).toEqual(Array(4).fill('replayed'));
    expect(await repo.peek('_req1', new Date())).toBeUndefined();
    expect(await repo.consume('_never', new Date())).toEqual({ ok: false, reason: 'unknown' });
  });

  test('an expired SAML request cannot be used, and is purged', async () => {
    const repo = ctx.store.repos.samlRequests;
    const past = new Date(Date.now() - 120_000);
    await repo.save({ id: '_old', issuedAt: past.toISOString(), expiresAt: new Date(past.getTime() + 60_000), pending });
    expect(await repo.peek('_old', new Date())).toBeUndefined();
    expect(await repo.consume('_old', new Date())).toEqual({ ok: false, reason: 'expired' });
    expect(await repo.purge(new Date())).toBeGreaterThanOrEqual(1);
    expect(await repo.consume('_old', new Date())).toEqual({ ok: false, reason: 'unknown' });
  });

  test('an authorization code is redeemed once, and not after expiry', async () => {
    const user = await ctx.keys.provisionUser({ userName: `code-${kind}@example.com` }, { actor: 'test' });
    const repo = ctx.store.repos.authCodes;
    const code = newAuthorizationCode();
    const now = new Date();
    const row = { codeHash: codeDigest(code), ...pending, userId: user.id, consumedAt: null, createdAt: now.toISOString() };
    delete (row as { state?: string }).state;
    await repo.insert({ ...row, expiresAt: new Date(now.getTime() + 60_000).toISOString() });
    const results = await Promise.all(Array.from({ length: 4 }, () => repo.redeem(codeDigest(code), new Date())));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.find((r) => !r.ok)).toMatchObject({ ok: false, reason: 'reused' });

    const expired = newAuthorizationCode();
    await repo.insert({ ...row, codeHash: codeDigest(expired), expiresAt: new Date(now.getTime() - 1000).toISOString() });
    expect(await repo.redeem(codeDigest(expired), new Date())).toMatchObject({ ok: false, reason: 'expired' });
    expect(await repo.redeem(codeDigest('nope'), new Date())).toEqual({ ok: false, reason: 'unknown' });
  });
});
