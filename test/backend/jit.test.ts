import request from 'supertest';
import { UserEntity } from '../../entities';
import { KmsUnavailableError } from '../../server/errors';
import { auditOf, createAuthFixture, idpAnswer, postToAcs, signInForToken, startSignIn, type AuthFixture } from '../support/auth-fixture';
import { testDatabaseNames } from '../support/databases';

const CLAIMS = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims';

/** Just-in-time provisioning at SAML sign-in (issue 11): off by default; on, the first sign-in creates the user and keys. */
describe.each(testDatabaseNames())('JIT provisioning at sign-in (%s)', (kind) => {
  let f: AuthFixture;
  beforeAll(async () => {
    f = await createAuthFixture(kind, { CS_JIT_PROVISIONING: 'true' });
  });
  afterAll(async () => {
    await f?.cleanupAll();
  });

  const users = () => f.store.dataSource.manager.count(UserEntity);

  test('the first sign-in creates the user and keys from the assertion; the key API answers; the second sign-in is the same user', async () => {
    // Entra ID's claim URIs for the profile.
    const token = await signInForToken(f, {
      nameId: 'jit.new@example.com',
      attributes: { [`${CLAIMS}/emailaddress`]: 'jit.new@example.com', [`${CLAIMS}/givenname`]: 'Jit', [`${CLAIMS}/surname`]: 'New', 'http://schemas.microsoft.com/identity/claims/displayname': 'Jit New' },
    });
    const me = await request(f.app).get('/api/keys/me').set('Authorization', `Bearer ${token}`).expect(200);
    expect(me.body.passwordKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const row = await f.store.repos.users.findById(me.body.userId);
    expect(row).toMatchObject({ userName: 'jit.new@example.com', email: 'jit.new@example.com', givenName: 'Jit', familyName: 'New', displayName: 'Jit New', active: expect.anything() });
    const provisioned = await f.store.repos.audit.recent(50, { action: 'user.provision', targetId: me.body.userId });
    expect(provisioned[0]).toMatchObject({ actor: 'saml:jit', outcome: 'success' });

    const before = await users();
    const again = await signInForToken(f, { nameId: 'JIT.NEW@example.com' });
    const me2 = await request(f.app).get('/api/keys/me').set('Authorization', `Bearer ${again}`).expect(200);
    expect(me2.body.userId).toBe(me.body.userId);
    expect(await users()).toBe(before);
  });

  test('deactivated or deleted users are not re-created by a sign-in', async () => {
    await f.keys.provisionUser({ userName: 'jit.off@example.com', active: false }, { actor: 'test' });
    const before = await users();
    const started = await startSignIn(f);
    const res = await postToAcs(f, await idpAnswer(f, started, { nameId: 'jit.off@example.com' }));
    expect(res.status).toBe(403);
    expect(await users()).toBe(before);
    expect(JSON.parse((await auditOf(f, 'saml.login'))[0].detail!)).toMatchObject({ reason: 'user is deactivated' });
  });

  test('a KMS outage during JIT: the sign-in fails, no user is written', async () => {
    const adapter = f.kms.forUri(f.config.kms.kekUri);
    const before = await users();
    const spy = jest.spyOn(adapter, 'wrap').mockRejectedValue(new KmsUnavailableError('test outage'));
    try {
      const started = await startSignIn(f);
      const res = await postToAcs(f, await idpAnswer(f, started, { nameId: 'jit.outage@example.com' }));
      expect(res.status).toBe(503);
    } finally {
      spy.mockRestore();
    }
    expect(await users()).toBe(before);
  });
});

describe('JIT provisioning off (default)', () => {
  test('an unknown user is refused and nothing is created', async () => {
    const f = await createAuthFixture('sqlite');
    try {
      const started = await startSignIn(f);
      const res = await postToAcs(f, await idpAnswer(f, started, { nameId: 'stranger@example.com', attributes: { email: 'stranger@example.com' } }));
      expect(res.status).toBe(403);
      expect(await f.store.dataSource.manager.count(UserEntity)).toBe(0);
    } finally {
      await f.cleanupAll();
    }
  });
});
