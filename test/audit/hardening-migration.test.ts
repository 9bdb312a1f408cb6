import type { Logger } from 'typeorm';
import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { verifyAuditChain } from '../../server/audit/verify';
import { chainHash, GENESIS_HASH } from '../../server/audit/chain-hash';

jest.setTimeout(180_000);

/**
 * Review finding F2: the audit-chain migration backfills the rows stored before it a page at a
 * time with one set-based UPDATE per page (round trips while it holds the table, not timing).
 */
describe.each(testDatabaseNames())('audit-chain migration backfill (%s)', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  test('2,345 existing rows: chained in id order with at most one UPDATE per page of 1,000', async () => {
    const ds = ctx.store.dataSource;
    const qr = ds.createQueryRunner();
    try {
      for (let i = 0; i < 20 && (await qr.hasTable('audit_chain_head')); i++) await ds.undoLastMigration({ transaction: 'each' });
      expect(await qr.hasColumn('audit_events', 'seq')).toBe(false);
    } finally {
      await qr.release();
    }
    const p = (n: number) => (kind === 'postgres' ? `$${n}` : '?');
    const total = 2345;
    for (let from = 0; from < total; from += 300) {
      const n = Math.min(300, total - from);
      const values = Array.from({ length: n }, (_, i) => `(${[1, 2, 3, 4].map((k) => p(i * 4 + k)).join(', ')}, 'success')`).join(', ');
      const params = Array.from({ length: n }, (_, i) => [new Date(Date.UTC(2026, 0, 1) + (from + i) * 1000).toISOString(), (from + i) % 7 === 0 ? null : `req-${from + i}`, 'cli', `old.action.${from + i}`]).flat();
      await ds.query(`INSERT INTO audit_events (at, request_id, actor, action, outcome) VALUES ${values}`, params);
    }
    // Another writer's row deleted before the upgrade: ids have a gap, seq must not.
    await ds.query(`DELETE FROM audit_events WHERE action = 'old.action.500'`);

    const updates: string[] = [];
    const logger = ds.logger;
    const counting: Logger = {
      logQuery: (query) => void (/^\s*UPDATE\s+[`"]?audit_events/i.test(query) && updates.push(query)),
      logQueryError: () => undefined,
      logQuerySlow: () => undefined,
      logSchemaBuild: () => undefined,
      logMigration: () => undefined,
      log: () => undefined,
    };
    Object.assign(ds, { logger: counting });
    try {
      await ds.runMigrations({ transaction: 'each' });
    } finally {
      Object.assign(ds, { logger });
    }
    expect(updates.length).toBeLessThanOrEqual(3);
    expect(updates.length).toBeGreaterThan(0);

    const rows = (await ds.query('SELECT id, seq, prev_hash, hash, at, request_id, action FROM audit_events ORDER BY id')) as Record<string, unknown>[];
    expect(rows).toHaveLength(total - 1);
    expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: total - 1 }, (_, i) => i + 1));
    expect(rows[0].prev_hash).toBe(GENESIS_HASH);
    // Recomputed here from the documented encoding, across a page boundary (seq 1000 → 1001).
    const r = rows[1000];
    expect(r.prev_hash).toBe(rows[999].hash);
    expect(r.hash).toBe(chainHash({ seq: '1001', at: String(r.at), requestId: r.request_id == null ? null : String(r.request_id), actor: 'cli', action: String(r.action), targetType: null, targetId: null, kekUri: null, outcome: 'success', detail: null, prevHash: String(rows[999].hash) }));
    const [head] = (await ds.query('SELECT seq, hash FROM audit_chain_head')) as Record<string, unknown>[];
    expect([Number(head.seq), head.hash]).toEqual([total - 1, rows[total - 2].hash]);
    await ctx.store.audit({ actor: 'test', action: 'after.migration', outcome: 'success' });
    expect(await verifyAuditChain(ds, ctx.kms)).toMatchObject({ ok: true, rows: total, from: 1n, to: BigInt(total) });
  });
});
