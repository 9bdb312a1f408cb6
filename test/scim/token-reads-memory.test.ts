import { loadConfig } from '../../server/config';
import { openStore } from '../../server/boot';
import type { Store } from '../../server/repositories/store';
import { ownWrites } from '../../server/repositories/runner';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { tokenReads } from '../../scim/repositories/token-reads';
import { TokenService } from '../../scim/tokens';
import { UnauthorizedError } from '../../server/errors';

/**
 * The per-request token lookup on an in-memory SQLite database (dev and tests: CS_DATABASE_URL=
 * sqlite::memory:), where it reads on the one connection the writes use. A token inserted by a
 * transaction still open must not be seen, and once that transaction rolls back it never existed.
 */
describe('token lookup on in-memory SQLite, beside an open transaction', () => {
  let store: Store;
  beforeAll(async () => {
    store = await openStore(loadConfig({ CS_DATABASE_URL: 'sqlite::memory:', CS_LOG_LEVEL: 'silent' }));
    await store.migrate();
  });
  afterAll(async () => store?.close());

  /** Resolves once every callback queued so far (I/O and timers included) has run. */
  const turnOfTheLoop = () => new Promise((r) => setImmediate(r));

  test('a token of a transaction that rolls back is not read while it is open, and refused after', async () => {
    const tokens = new TokenService(ownWrites(store, (m) => new ApiTokenRepository(m)), tokenReads(store));
    const live = (await tokens.create({ name: 'committed', scope: 'scim' })).token;

    let rollBack!: () => void;
    const gate = new Promise<void>((r) => (rollBack = r));
    let inserted!: (token: string) => void;
    const token = new Promise<string>((r) => (inserted = r));
    const tx = store.transaction(async (t) => {
      const inTx = new TokenService(async (fn) => fn(new ApiTokenRepository(t.manager)));
      inserted((await inTx.create({ name: 'rolled-back', scope: 'scim' })).token);
      await gate;
      throw new Error('rolled back');
    });
    const uncommitted = await token;
    const id = /^cst_([0-9a-f]+)\./.exec(uncommitted)![1];

    // The lookup waits for the transaction's end instead of reading its uncommitted row.
    let lookedUp: unknown = 'pending';
    const lookup = tokenReads(store)(id).then((r) => (lookedUp = r));
    const auth = tokens.authenticate(`Bearer ${uncommitted}`, 'scim').then(
      () => 'accepted',
      (err: unknown) => err,
    );
    await turnOfTheLoop();
    expect(lookedUp).toBe('pending');

    rollBack();
    await expect(tx).rejects.toThrow('rolled back');
    await lookup;
    expect(lookedUp).toBeNull();
    expect(await auth).toBeInstanceOf(UnauthorizedError);
    // A token committed before is read as always, with no transaction open.
    expect(await tokens.authenticate(`Bearer ${live}`, 'scim')).toMatchObject({ name: 'committed' });
  });
});
