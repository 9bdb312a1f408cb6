import { loadConfig } from '../../server/config';
import { openStore } from '../../server/boot';
import { RefusalBound } from '../../server/audit/refusal-bound';
import { AuditEventEntity } from '../../entities';
import { testDatabaseNames, DATABASE_FACTORIES, type TestDatabase } from '../support/databases';

/**
 * Refusals over the per-minute bound are held as a count until their minute ends; a process that
 * stops (graceful shutdown closes the store) writes those counts first instead of losing them.
 */
describe.each(testDatabaseNames())('suppressed refusal counts at close on %s', (kind) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
  });
  afterAll(async () => {
    await db?.drop();
  });

  test('every refusal is accounted for after the store closes mid-minute', async () => {
    const config = loadConfig({ CS_DATABASE_URL: db.url });
    const store = await openStore(config);
    await store.migrate();
    const bound = new RefusalBound(store, { rowsPerMinute: 2 });
    for (let i = 0; i < 5; i++) await bound.record('anonymous|bad_token', { actor: 'anonymous', action: 'test.refused', outcome: 'refused', detail: { n: i } });
    await store.close();

    const again = await openStore(config);
    try {
      const rows = await again.repos.manager.find(AuditEventEntity, { where: { action: 'test.refused' }, order: { id: 'ASC' } });
      const counts = rows.map((r) => 1 + Number((JSON.parse(r.detail ?? '{}') as { suppressed?: number }).suppressed ?? 0));
      expect(rows).toHaveLength(3);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(5);
    } finally {
      await again.close();
    }
  });
});
