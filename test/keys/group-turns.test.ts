import { loadConfig } from '../../server/config';
import { openStore } from '../../server/boot';
import type { Store } from '../../server/repositories/store';
import { GroupTurns } from '../../server/keys/group-turns';
import { GroupTurnRepository } from '../../server/repositories/group-turns';
import { ServiceUnavailableError } from '../../server/errors';
import { testDatabaseNames, DATABASE_FACTORIES, type TestDatabase } from '../support/databases';

const GROUP = '00000000-0000-4000-8000-00000000a001';

/**
 * The cross-process turn of a rotating group write: a waiter backs off instead of polling the
 * database every 25 ms for as long as the holder takes, and gives up with a 503 after a bound.
 */
describe.each(testDatabaseNames())('group rotation turns on %s', (kind) => {
  let db: TestDatabase;
  let store: Store;
  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
    store = await openStore(loadConfig({ CS_DATABASE_URL: db.url }));
    await store.migrate();
  });
  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });
  afterEach(() => jest.restoreAllMocks());

  test('a waiter backs off, then gets a 503 with Retry-After while the turn stays held', async () => {
    const holder = new GroupTurns(store);
    const release = await holder.take(GROUP);
    try {
      const tries = jest.spyOn(GroupTurnRepository.prototype, 'tryTake');
      const waiter = new GroupTurns(store, { pollMs: 25, maxPollMs: 200, maxWaitMs: 800 });
      const started = Date.now();
      const err = await waiter.take(GROUP).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ServiceUnavailableError);
      expect((err as ServiceUnavailableError).status).toBe(503);
      expect((err as ServiceUnavailableError).retryAfter).toBeGreaterThan(0);
      expect(Date.now() - started).toBeGreaterThanOrEqual(800);
      // Fixed 25 ms polling would be ≈ 30 attempts in 800 ms; doubling to 200 ms is at most ≈ 9.
      expect(tries.mock.calls.length).toBeGreaterThanOrEqual(3);
      expect(tries.mock.calls.length).toBeLessThanOrEqual(12);
    } finally {
      await release();
    }
  });

  test('a waiter takes the turn once the holder gives it back', async () => {
    const holder = new GroupTurns(store);
    const release = await holder.take(GROUP);
    const waiter = new GroupTurns(store, { pollMs: 10, maxPollMs: 50, maxWaitMs: 10_000 });
    let taken = false;
    const waiting = waiter.take(GROUP).then((giveBack) => {
      taken = true;
      return giveBack;
    });
    await new Promise((r) => setTimeout(r, 150));
    expect(taken).toBe(false);
    await release();
    const giveBack = await waiting;
    expect(taken).toBe(true);
    await giveBack();
  });
});
