import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { verifyAuditChain } from '../../server/audit/verify';
import { chainHash, GENESIS_HASH } from '../../server/audit/chain-hash';

/**
 * The audit chain as writers build it: every writer (a service's transaction, a failure's
 * stand-alone event, the key API's group commit) numbers its rows in commit order with no gaps
 * and links each to the one before; the migration chains rows that existed before it.
 */
describe.each(testDatabaseNames())('audit chain (%s)', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  const seqs = async () => ((await ctx.store.dataSource.query('SELECT seq FROM audit_events ORDER BY seq')) as { seq: unknown }[]).map((r) => Number(r.seq));

  test('the migration chains existing rows in id order, and writers continue the chain', async () => {
    const ds = ctx.store.dataSource;
    const qr = ds.createQueryRunner();
    try {
      // Back to the schema before the chain (migrations after it are undone first).
      for (let i = 0; i < 20 && (await qr.hasTable('audit_chain_head')); i++) await ds.undoLastMigration({ transaction: 'each' });
      expect(await qr.hasColumn('audit_events', 'seq')).toBe(false);
      expect(await qr.hasTable('audit_chain_head')).toBe(false);
    } finally {
      await qr.release();
    }
    const p = (n: number) => (kind === 'postgres' ? `$${n}` : '?');
    for (let i = 0; i < 3; i++) {
      await ds.query(`INSERT INTO audit_events (at, request_id, actor, action, outcome, detail) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)})`, [
        `2026-01-0${i + 1}T00:00:00.000Z`, i === 1 ? null : `req-${i}`, 'cli', `old.action.${i}`, 'success', i === 2 ? '{"n":2}' : null,
      ]);
    }
    await ds.runMigrations({ transaction: 'each' });

    const rows = (await ds.query('SELECT id, seq, prev_hash, hash, at, request_id, action, detail FROM audit_events ORDER BY id')) as Record<string, unknown>[];
    expect(rows.map((r) => Number(r.seq))).toEqual([1, 2, 3]);
    expect(rows[0].prev_hash).toBe(GENESIS_HASH);
    expect(rows[1].prev_hash).toBe(rows[0].hash);
    // Recomputed here from the documented encoding (docs/wire-formats.md §4), not through chain.ts.
    expect(rows[2].hash).toBe(chainHash({ seq: '3', at: '2026-01-03T00:00:00.000Z', requestId: 'req-2', actor: 'cli', action: 'old.action.2', targetType: null, targetId: null, kekUri: null, outcome: 'success', detail: '{"n":2}', prevHash: String(rows[1].hash) }));
    const [head] = (await ds.query('SELECT seq, hash FROM audit_chain_head')) as Record<string, unknown>[];
    expect([Number(head.seq), head.hash]).toEqual([3, rows[2].hash]);

    await ctx.store.audit({ actor: 'test', action: 'after.migration', outcome: 'success' });
    expect(await seqs()).toEqual([1, 2, 3, 4]);
    expect(await verifyAuditChain(ds, ctx.kms)).toMatchObject({ ok: true, rows: 4, from: 1n, to: 4n });
  });

  test('concurrent writers of every kind: seq gapless in commit order, the chain verifies', async () => {
    const before = (await seqs()).length;
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      work.push(ctx.store.auditCommitted({ actor: 'test', action: 'hot.unwrap', outcome: 'success', targetId: `t${i}` }));
      if (i % 4 === 0) work.push(ctx.store.audit({ actor: 'test', action: 'refusal', outcome: 'refused', requestId: `r${i}` }));
      if (i % 5 === 0) {
        work.push(
          ctx.store.transaction(async (tx) => {
            await tx.audit.append({ actor: 'test', action: 'tx.first', outcome: 'success', detail: { i } });
            await tx.audit.append({ actor: 'test', action: 'tx.second', outcome: 'success', detail: { i } });
          }),
        );
      }
    }
    await Promise.all(work);
    const all = await seqs();
    expect(all.length).toBe(before + 40 + 10 + 16);
    expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
    const v = await verifyAuditChain(ctx.store.dataSource, ctx.kms);
    expect(v).toMatchObject({ ok: true, rows: all.length });
  });

  test('a transaction that rolls back leaves no audit row and does not move the head', async () => {
    const before = await seqs();
    await expect(
      ctx.store.transaction(async (tx) => {
        await tx.audit.append({ actor: 'test', action: 'doomed', outcome: 'success' });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(await seqs()).toEqual(before);
    await ctx.store.audit({ actor: 'test', action: 'next', outcome: 'success' });
    expect(await seqs()).toEqual([...before, before.length + 1]);
    expect((await verifyAuditChain(ctx.store.dataSource, ctx.kms)).ok).toBe(true);
  });

  test('a lone surrogate in a client-supplied value is stored as U+FFFD, so the row still verifies', async () => {
    await ctx.store.auditCommitted({ actor: 'test', action: 'odd', outcome: 'success', targetId: 'x\ud800y', requestId: 'ab\udc00' });
    expect((await verifyAuditChain(ctx.store.dataSource, ctx.kms)).ok).toBe(true);
  });
});

/** CS_AUDIT_CHAIN=off (for measuring): rows keep seq in commit order but carry no hash, and verify says so. */
describe.each(testDatabaseNames())('audit chain off (%s)', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind, { CS_AUDIT_CHAIN: 'off' });
  });
  afterAll(async () => ctx?.cleanup());

  test('rows are numbered without gaps, unhashed; verify stops at the first', async () => {
    await Promise.all([
      ctx.store.auditCommitted({ actor: 'test', action: 'hot', outcome: 'success' }),
      ctx.store.auditCommitted({ actor: 'test', action: 'hot', outcome: 'success' }),
      ctx.store.audit({ actor: 'test', action: 'refusal', outcome: 'refused' }),
    ]);
    const rows = (await ctx.store.dataSource.query('SELECT seq, prev_hash, hash FROM audit_events ORDER BY seq')) as Record<string, unknown>[];
    expect(rows.map((r) => [Number(r.seq), r.prev_hash, r.hash])).toEqual([
      [1, null, null],
      [2, null, null],
      [3, null, null],
    ]);
    expect((await verifyAuditChain(ctx.store.dataSource, ctx.kms)).problem).toBe('seq 1: not chained (no hash: written with CS_AUDIT_CHAIN=off, or the hash was removed)');
  });
});
