import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { uniqueViolation } from '../../server/repositories/db-errors';

/**
 * Migration 1764820000000 numbers the keys already stored in the order they were created, and the
 * generation is unique from then on (NULL, from a replica of the previous release during a rolling
 * upgrade, is allowed more than once).
 */
describe.each(testDatabaseNames())('signing_keys.generation migration (%s)', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  test('down drops the column; up numbers existing keys by creation and enforces uniqueness', async () => {
    const ds = ctx.store.dataSource;
    const qr = ds.createQueryRunner();
    const p = kind === 'postgres' ? ['$1', '$2', '$3', '$4'] : ['?', '?', '?', '?'];
    const insert = (kid: string, createdAt: string, state: string, generation?: number) =>
      generation === undefined
        ? ds.query(`INSERT INTO signing_keys (kid, alg, public_jwk, wrapped_private_jwk, kek_uri, state, created_at) VALUES (${p[0]}, 'ES256', '{}', 'cs1.x', 'local:default', ${p[1]}, ${p[2]})`, [kid, state, createdAt])
        : ds.query(`INSERT INTO signing_keys (kid, alg, public_jwk, wrapped_private_jwk, kek_uri, state, created_at, generation) VALUES (${p[0]}, 'ES256', '{}', 'cs1.x', 'local:default', ${p[1]}, ${p[2]}, ${p[3]})`, [kid, state, createdAt, generation]);
    try {
      for (let i = 0; i < 20 && (await qr.hasColumn('signing_keys', 'generation')); i++) await ds.undoLastMigration({ transaction: 'each' });
      expect(await qr.hasColumn('signing_keys', 'generation')).toBe(false);
      // Kids in another order than creation, two created in the same millisecond (the kid breaks the tie).
      await insert('c-newest', '2026-11-03T00:00:00.000Z', 'active');
      await insert('a-oldest', '2026-11-01T00:00:00.000Z', 'retired');
      await insert('z-second', '2026-11-02T00:00:00.000Z', 'retired');
      await insert('b-second', '2026-11-02T00:00:00.000Z', 'retired');
      await ds.runMigrations({ transaction: 'each' });
      const rows: { kid: string; generation: unknown }[] = await ds.query('SELECT kid, generation FROM signing_keys ORDER BY kid');
      expect(Object.fromEntries(rows.map((r) => [r.kid, Number(r.generation)]))).toEqual({ 'a-oldest': 1, 'b-second': 2, 'z-second': 3, 'c-newest': 4 });
      expect(await ctx.store.repos.signingKeys.maxGeneration()).toBe(4);

      const taken = await insert('d-racer', '2026-11-04T00:00:00.000Z', 'active', 4).then(() => undefined, (err: unknown) => err);
      expect(uniqueViolation(taken)).toMatch(/generation/);
      await insert('e-old-release', '2026-11-04T00:00:00.000Z', 'retired');
      await insert('f-old-release', '2026-11-04T00:00:00.000Z', 'retired');
      await insert('g-next', '2026-11-05T00:00:00.000Z', 'active', 5);
      expect(await ctx.store.repos.signingKeys.maxGeneration()).toBe(5);
    } finally {
      await qr.release();
    }
  });
});
