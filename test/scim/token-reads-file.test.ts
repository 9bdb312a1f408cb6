import { createSqlite, type TestDatabase } from '../support/databases';
import { loadConfig } from '../../server/config';
import { openStore } from '../../server/boot';
import type { Store } from '../../server/repositories/store';
import { ownWrites } from '../../server/repositories/runner';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { tokenReads } from '../../scim/repositories/token-reads';
import { TokenService } from '../../scim/tokens';
import { UnauthorizedError } from '../../server/errors';

/**
 * The per-request token lookup on a file SQLite database (token-reads.ts, its read-only connection)
 * sees committed rows only: a transaction another request holds open on the writer (an insert, a
 * revocation) stays invisible until it commits, and a rolled-back insert never exists.
 */
describe('token lookup on file SQLite, beside an open transaction', () => {
  let db: TestDatabase;
  let store: Store;
  beforeAll(async () => {
    db = await createSqlite();
    store = await openStore(loadConfig({ CS_DATABASE_URL: db.url, CS_LOG_LEVEL: 'silent' }));
    await store.migrate();
  });
  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });

  const service = () => new TokenService(ownWrites(store, (m) => new ApiTokenRepository(m)), tokenReads(store));
  const idOf = (token: string) => /^cst_([0-9a-f]+)\./.exec(token)![1]!;
  const authenticated = (token: string) =>
    service()
      .authenticate(`Bearer ${token}`, 'scim')
      .then(
        (t) => t.name,
        (err: unknown) => err,
      );

  /** A transaction that runs `inside`, then waits for `end()`; it commits, or rolls back if asked. */
  function held<T>(inside: (repo: ApiTokenRepository, tokens: TokenService) => Promise<T>) {
    let end!: (rollBack: boolean) => void;
    const gate = new Promise<boolean>((r) => (end = r));
    let done!: (v: T) => void;
    const reached = new Promise<T>((r) => (done = r));
    const tx = store.transaction(async (t) => {
      const repo = new ApiTokenRepository(t.manager);
      done(await inside(repo, new TokenService(async (fn) => fn(repo))));
      if (await gate) throw new Error('rolled back');
    });
    return { reached, tx, commit: () => end(false), rollBack: () => end(true) };
  }

  test('a revocation still open is not seen; once committed the token is refused', async () => {
    const { token } = await service().create({ name: 'to-revoke', scope: 'scim' });
    expect(await authenticated(token)).toBe('to-revoke');

    const revoking = held((repo) => repo.revoke(idOf(token), new Date().toISOString()));
    try {
      expect(await revoking.reached).toBe(true);
      // Open on the writer: the lookup sees the committed (live) row.
      expect((await tokenReads(store)(idOf(token)))?.revoked_at).toBeNull();
      expect(await authenticated(token)).toBe('to-revoke');
    } finally {
      revoking.commit();
      await revoking.tx;
    }
    // Committed: the lookup sees the revocation.
    expect((await tokenReads(store)(idOf(token)))?.revoked_at).not.toBeNull();
    expect(await authenticated(token)).toBeInstanceOf(UnauthorizedError);
  });

  test('a token inserted by a transaction still open is not seen, and never exists if it rolls back', async () => {
    const inserting = held(async (_repo, tokens) => (await tokens.create({ name: 'rolled-back', scope: 'scim' })).token);
    const uncommitted = await inserting.reached;
    try {
      expect(await tokenReads(store)(idOf(uncommitted))).toBeNull();
      expect(await authenticated(uncommitted)).toBeInstanceOf(UnauthorizedError);
    } finally {
      inserting.rollBack();
      await expect(inserting.tx).rejects.toThrow('rolled back');
    }
    expect(await tokenReads(store)(idOf(uncommitted))).toBeNull();

    const committing = held(async (_repo, tokens) => (await tokens.create({ name: 'committed', scope: 'scim' })).token);
    const later = await committing.reached;
    try {
      expect(await tokenReads(store)(idOf(later))).toBeNull();
    } finally {
      committing.commit();
      await committing.tx;
    }
    expect(await authenticated(later)).toBe('committed');
  });
});
