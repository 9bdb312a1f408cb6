import type { Store } from '../../server/repositories/store';
import { ConflictError } from '../../server/errors';
import type { UserKeysRow, UserRow } from '../../entities';
import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';

/**
 * UsersRepository.insert (server/repositories/users.ts; on PostgreSQL one statement for both rows
 * since issue 10): every value of the user and key rows is stored as given, on each database, and
 * a failure of either row writes neither.
 */
describe.each(testDatabaseNames())('user + key row insert (%s)', (kind) => {
  let ctx: TestContext;
  let store: Store;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
    store = ctx.store;
  });
  afterAll(async () => ctx?.cleanup());

  const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
  const AWKWARD = "o'brien \\ $1 ünï 𝄞 '); DELETE FROM users; --";
  const user = (n: number, over: Partial<UserRow> = {}): UserRow => ({
    id: id(n), userName: `User ${n} ${AWKWARD}`, userNameNorm: `user ${n} ${AWKWARD}`.toLowerCase(), externalId: n % 2 ? `ext-${n}` : null,
    displayName: n % 2 ? AWKWARD : null, email: `u${n}@example.com`, givenName: 'Given', familyName: null, active: n % 3 !== 0,
    scimAttributes: JSON.stringify({ name: { formatted: AWKWARD }, emails: [{ value: `u${n}@example.com`, primary: true }] }),
    createdAt: '2026-12-01T10:00:00.000Z', updatedAt: '2026-12-01T10:00:00.001Z', deletedAt: null, version: 1, ...over,
  });
  const keys = (n: number, over: Partial<UserKeysRow> = {}): UserKeysRow => ({
    userId: id(n), keyAlg: 'ec-p256', publicJwk: `{"kty":"EC","x":"${n}"}`, privateJwe: `eyJ.${AWKWARD}.${n}`, wrappedPasswordKey: `cs1.${n}`,
    kekUri: 'local://default', createdAt: '2026-12-01T10:00:00.002Z', ...over,
  });
  const USER_SQL = 'SELECT id, user_name, user_name_norm, external_id, display_name, email, given_name, family_name, active, scim_attributes, created_at, updated_at, deleted_at, version FROM users WHERE id = ';
  const KEYS_SQL = 'SELECT user_id, key_alg, public_jwk, private_jwe, wrapped_password_key, kek_uri, created_at FROM user_keys WHERE user_id = ';
  const p = () => (kind === 'postgres' ? '$1' : '?');
  const read = async (n: number) => ({
    user: ((await store.dataSource.query(USER_SQL + p(), [id(n)])) as Record<string, unknown>[])[0],
    keys: ((await store.dataSource.query(KEYS_SQL + p(), [id(n)])) as Record<string, unknown>[])[0],
  });
  const inTx = (u: UserRow, k: UserKeysRow) => store.transaction((tx) => tx.users.insert(u, k));

  test('every value of both rows is stored as given, inside a transaction and on its own', async () => {
    for (const n of [1, 2, 3]) {
      const [u, k] = [user(n), keys(n)];
      await (n === 2 ? store.repos.users.insert(u, k) : inTx(u, k));
      const got = await read(n);
      expect({ ...got.user, active: [true, 1, '1'].includes(got.user!.active as never), version: Number(got.user!.version) }).toEqual({
        id: u.id, user_name: u.userName, user_name_norm: u.userNameNorm, external_id: u.externalId, display_name: u.displayName, email: u.email,
        given_name: u.givenName, family_name: u.familyName, active: u.active, scim_attributes: u.scimAttributes, created_at: u.createdAt,
        updated_at: u.updatedAt, deleted_at: u.deletedAt, version: u.version,
      });
      expect(got.keys).toEqual({
        user_id: k.userId, key_alg: k.keyAlg, public_jwk: k.publicJwk, private_jwe: k.privateJwe, wrapped_password_key: k.wrappedPasswordKey,
        kek_uri: k.kekUri, created_at: k.createdAt,
      });
    }
  });

  test('a duplicate userName is a ConflictError and writes no key row; a failing key row writes no user row', async () => {
    await expect(inTx(user(10, { userName: 'USER 1 x', userNameNorm: user(1).userNameNorm }), keys(10))).rejects.toBeInstanceOf(ConflictError);
    await expect(store.repos.users.insert(user(11, { userNameNorm: user(1).userNameNorm }), keys(11))).rejects.toMatchObject({ target: 'userName' });
    // NOT NULL on every database: the second row of the pair fails.
    await expect(inTx(user(12), keys(12, { privateJwe: null as unknown as string }))).rejects.toThrow();
    await expect(store.repos.users.insert(user(13), keys(13, { privateJwe: null as unknown as string }))).rejects.toThrow();
    for (const n of [10, 11, 12]) expect(await read(n)).toEqual({ user: undefined, keys: undefined });
    if (kind === 'postgres') expect(await read(13)).toEqual({ user: undefined, keys: undefined });
  });
});
