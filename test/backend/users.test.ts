import { UserEntity } from '../../entities';
import { KmsUnavailableError } from '../../server/errors';
import { binding } from '../../server/keys/binding';
import { openUnderSymmetricKey } from '../../server/keys/jose-keys';
import { testDatabaseNames } from '../support/databases';
import { backendContext, type BackendTestContext } from './support';

/** POST /backend/v1/users (issue 11): users and keys for organisations without SCIM, idempotent on userName. */
describe.each(testDatabaseNames())('backend API users (%s)', (kind) => {
  let ctx: BackendTestContext;
  beforeAll(async () => {
    ctx = await backendContext(kind);
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  const users = () => ctx.store.dataSource.manager.count(UserEntity);

  test('creates the user and keys like SCIM: 201 with public and encrypted forms; the same userName (any case) → 200, the same user', async () => {
    const res = await ctx.backend.post('/users', { userName: 'Nora@Example.com', email: 'nora@example.com', givenName: 'Nora', familyName: 'Jones' }).expect(201);
    const u = res.body;
    expect(res.headers.location).toBe(`/backend/v1/users/${u.id}`);
    expect(u).toMatchObject({ userName: 'Nora@Example.com', email: 'nora@example.com', active: true, keyAlgorithm: 'ec-p256' });
    expect(u.publicKeyJwk.d).toBeUndefined();
    // The wrapped password key opens (KMS, bound to this user) and opens the private key of the public key returned.
    const pk = await ctx.kms.unwrapStored(u.wrappedPasswordKey, binding.passwordKey(u.id));
    expect((await openUnderSymmetricKey(u.privateKeyJwe, pk)).x).toBe(u.publicKeyJwk.x);
    pk.fill(0);
    await expect(ctx.kms.unwrapStored(u.wrappedPasswordKey, binding.passwordKey('someone-else'))).rejects.toThrow();

    const again = await ctx.backend.post('/users', { userName: 'nora@example.COM' }).expect(200);
    expect(again.body).toEqual(u);
    expect((await ctx.backend.get(`/users/${u.id}`).expect(200)).body).toEqual(u);
    // The IdP sees the user too (the same directory), and the public-key lookup finds them.
    const scim = await ctx.get(`/Users/${u.id}`).expect(200);
    expect(scim.body).toMatchObject({ userName: 'Nora@Example.com', name: { givenName: 'Nora', familyName: 'Jones' } });
    const found = await ctx.backend.post('/public-keys/lookup', { emails: ['NORA@example.com'] }).expect(200);
    expect(found.body.keys.map((k: { userId: string }) => k.userId)).toEqual([u.id]);
  });

  test('concurrent creates of one userName make one user', async () => {
    const before = await users();
    const results = await Promise.all(Array.from({ length: 4 }, () => ctx.backend.post('/users', { userName: 'race@example.com' })));
    expect(results.map((r) => r.status).sort()).toEqual(expect.arrayContaining([201]));
    expect(results.every((r) => r.status === 200 || r.status === 201)).toBe(true);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(await users()).toBe(before + 1);
  });

  test('bad input → 400; KMS outage → 503 + Retry-After; nothing written', async () => {
    const before = await users();
    for (const body of [{}, { userName: '' }, { userName: 'x'.repeat(256) }, { userName: 'a', email: 'not-an-email' }, { userName: 'a', role: 'admin' }]) {
      const res = await ctx.backend.post('/users', body).expect(400);
      expect(res.body.code).toBe('invalid_input');
    }
    const adapter = ctx.kms.forUri(ctx.config.kms.kekUri);
    const spy = jest.spyOn(adapter, 'wrap').mockRejectedValue(new KmsUnavailableError('test outage'));
    try {
      const res = await ctx.backend.post('/users', { userName: 'outage@example.com' }).expect(503);
      expect(res.headers['retry-after']).toBeDefined();
    } finally {
      spy.mockRestore();
    }
    expect(await users()).toBe(before);
    await ctx.backend.get('/users/00000000-0000-0000-0000-000000000000').expect(404);
  });
});
