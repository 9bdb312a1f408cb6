import { IdempotencyEntity } from '../../entities';
import type { IdempotencyRow } from '../../entities/backend';
import { createTestContext, type TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';

/** Migration 1764790000000 (claim_id) goes down and up again on each engine; records survive both ways. */
describe.each(testDatabaseNames())('Idempotency-Key claim id migration (%s)', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  test('down drops claim_id and keeps the records; up adds it back, empty on old records', async () => {
    const ds = ctx.store.dataSource;
    const qr = ds.createQueryRunner();
    const row: IdempotencyRow = { tokenId: 't'.repeat(32), idemKey: 'k'.repeat(255), requestHash: 'a'.repeat(64), claimId: 'c'.repeat(32), status: 201, response: '{"body":{}}', createdAt: '2026-12-01T10:00:00.000Z', expiresAt: '2026-12-02T10:00:00.000Z' };
    try {
      await ctx.store.transaction((tx) => tx.manager.insert(IdempotencyEntity, row));
      expect(await ds.manager.findOneBy(IdempotencyEntity, { tokenId: row.tokenId })).toEqual(row);
      for (let i = 0; i < 20 && (await qr.hasColumn('backend_idempotency_keys', 'claim_id')); i++) await ds.undoLastMigration({ transaction: 'each' });
      expect(await qr.hasColumn('backend_idempotency_keys', 'claim_id')).toBe(false);
      expect(await ds.query('SELECT request_hash FROM backend_idempotency_keys')).toEqual([{ request_hash: row.requestHash }]);
      await ds.runMigrations({ transaction: 'each' });
      expect(await qr.hasColumn('backend_idempotency_keys', 'claim_id')).toBe(true);
      expect(await ds.manager.findOneBy(IdempotencyEntity, { tokenId: row.tokenId })).toEqual({ ...row, claimId: null });
      await ctx.store.transaction((tx) => tx.manager.update(IdempotencyEntity, { tokenId: row.tokenId }, { claimId: 'd'.repeat(32) }));
      expect((await ds.manager.findOneBy(IdempotencyEntity, { tokenId: row.tokenId }))?.claimId).toBe('d'.repeat(32));
    } finally {
      await qr.release();
    }
  });
});
