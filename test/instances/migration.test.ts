import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { InstancesRepository } from '../../server/instances/repository';

/** Migration 1764770000000 goes down and up again on each engine, and the table takes a row both ways. */
describe.each(testDatabaseNames())('server_instances migration (%s)', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  test('down drops server_instances, up re-creates it', async () => {
    const ds = ctx.store.dataSource;
    const qr = ds.createQueryRunner();
    const repo = new InstancesRepository(ctx.store);
    const row = { id: '6f1a0b7e-2c1d-4e55-9a0b-1c2d3e4f5a6b', hostname: 'h'.repeat(255), pid: 2_147_483_647, worker: 64, version: '1.2.3-rc.1+build.7', started_at: '2026-12-01T10:00:00.000Z', seen_at: '2026-12-01T10:00:30.000Z' };
    try {
      await repo.beat(row);
      expect(await repo.seenSince('2026-12-01T00:00:00.000Z')).toEqual([row]);
      for (let i = 0; i < 20 && (await qr.hasTable('server_instances')); i++) await ds.undoLastMigration({ transaction: 'each' });
      expect(await qr.hasTable('server_instances')).toBe(false);
      await ds.runMigrations({ transaction: 'each' });
      expect(await qr.hasTable('server_instances')).toBe(true);
      expect(await repo.seenSince('2026-12-01T00:00:00.000Z')).toEqual([]);
      await repo.beat({ ...row, worker: null });
      expect(await repo.seenSince('2026-12-01T00:00:00.000Z')).toEqual([{ ...row, worker: null }]);
      // A second beat moves seen_at only.
      await repo.beat({ ...row, worker: null, hostname: 'other', seen_at: '2026-12-01T10:01:00.000Z' });
      expect(await repo.seenSince('2026-12-01T00:00:00.000Z')).toEqual([{ ...row, worker: null, seen_at: '2026-12-01T10:01:00.000Z' }]);
    } finally {
      await qr.release();
    }
  });
});
