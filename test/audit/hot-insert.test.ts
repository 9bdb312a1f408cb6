import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { verifyAuditChain } from '../../server/audit/verify';
import { chainHash, GENESIS_HASH } from '../../server/audit/chain-hash';
import { auditRow } from '../../server/repositories/audit';
import type { AuditEventRow } from '../../entities';

/**
 * The key API's audit insert (server/repositories/hot-queries.ts, insertAudit): a batch of rows
 * chains exactly as the same rows written one by one, values are stored byte for byte, and a
 * failed batch writes nothing and leaves the head where it was.
 */
describe.each(testDatabaseNames())('hot audit insert (%s)', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  type Text = string | null;
  type Stored = { seq: unknown; prev_hash: string; hash: string; at: string; request_id: Text; actor: string; action: string } & {
    target_type: Text; target_id: Text; kek_uri: Text; outcome: string; detail: Text;
  };
  const COLUMNS = 'seq, prev_hash, hash, at, request_id, actor, action, target_type, target_id, kek_uri, outcome, detail';
  const stored = async () => (await ctx.store.dataSource.query(`SELECT ${COLUMNS} FROM audit_events ORDER BY seq`)) as Stored[];
  const head = async () => ((await ctx.store.dataSource.query('SELECT seq, hash FROM audit_chain_head')) as { seq: unknown; hash: string | null }[]).map((h) => [String(h.seq), h.hash]);
  // Values that escaping could mangle or be broken out of: quotes, backslashes, $n, a statement separator, non-ASCII.
  const AWKWARD = ["o'brien", 'back\\slash \\x27', "'); DELETE FROM audit_events; --", '$1 $$ $q$', 'ünï ☃ 𝄞', 'E\'\\\\\''];
  const row = (i: number): AuditEventRow =>
    auditRow({
      actor: `user:${AWKWARD[i % AWKWARD.length]}`, action: 'password-key.unwrap', outcome: 'success', requestId: `req-${i}`, targetType: 'user',
      targetId: AWKWARD[(i + 1) % AWKWARD.length], kekUri: i % 2 ? undefined : 'local://default', detail: { note: AWKWARD[(i + 2) % AWKWARD.length], i },
    });

  test('a batch chains like the same rows one by one; every value is stored exactly; the chain verifies', async () => {
    const batch = Array.from({ length: 6 }, (_, i) => row(i));
    const single = Array.from({ length: 6 }, (_, i) => row(i + 6));
    const expected = [...batch, ...single].map((r) => ({ ...r }));
    const [[start, startHash]] = await head();
    const n0 = Number(start);
    await ctx.store.hot.insertAudit(batch);
    for (const r of single) await ctx.store.hot.insertAudit([r]);

    const rows = (await stored()).slice(n0);
    expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: 12 }, (_, i) => n0 + i + 1));
    let prev = startHash ?? GENESIS_HASH;
    rows.forEach((r, i) => {
      const e = expected[i]!;
      expect([r.at, r.request_id, r.actor, r.action, r.target_type, r.target_id, r.kek_uri, r.outcome, r.detail]).toEqual([e.at, e.requestId, e.actor, e.action, e.targetType, e.targetId, e.kekUri, e.outcome, e.detail]);
      // Recomputed from the documented encoding, not read back from chain.ts.
      expect(r.prev_hash).toBe(prev);
      expect(r.hash).toBe(chainHash({ ...e, seq: String(n0 + i + 1), prevHash: prev }));
      prev = r.hash;
    });
    expect(await head()).toEqual([[String(n0 + 12), prev]]);
    expect(await verifyAuditChain(ctx.store.dataSource, ctx.kms)).toMatchObject({ ok: true, rows: n0 + 12 });
  });

  test('a batch with one bad row writes none of them and leaves the head; the next batch continues the chain', async () => {
    const before = await stored();
    const headBefore = await head();
    const bad = { ...row(1), actor: null as unknown as string }; // NOT NULL on every database
    // Matched by message: better-sqlite3's error class may come from another test file's realm.
    await expect(ctx.store.hot.insertAudit([row(0), bad, row(2)])).rejects.toHaveProperty('message', expect.stringMatching(/null/i));
    expect(await stored()).toEqual(before);
    expect(await head()).toEqual(headBefore);

    await ctx.store.hot.insertAudit([row(3), row(4)]);
    const after = await stored();
    expect(after.map((r) => Number(r.seq))).toEqual(Array.from({ length: before.length + 2 }, (_, i) => i + 1));
    expect(await verifyAuditChain(ctx.store.dataSource, ctx.kms)).toMatchObject({ ok: true, rows: before.length + 2 });
  });

  test('through the group commit, a failed batch rejects each of its waiters and writes none of their rows', async () => {
    const before = (await stored()).length;
    const hot = ctx.store.hot;
    const insertAudit = hot.insertAudit;
    // The batch fails in the database: one of its rows breaks a constraint.
    hot.insertAudit = (rows) => insertAudit(rows.map((r, i) => (i === rows.length - 1 ? { ...r, actor: null as unknown as string } : r)));
    try {
      const waiters = Array.from({ length: 5 }, (_, i) => ctx.store.auditCommitted({ actor: 'test', action: 'hot.unwrap', outcome: 'success', requestId: `gc-${i}` }));
      const settled = await Promise.allSettled(waiters);
      expect(settled.map((s) => s.status)).toEqual(Array(5).fill('rejected'));
    } finally {
      hot.insertAudit = insertAudit;
    }
    expect((await stored()).length).toBe(before);
    await ctx.store.auditCommitted({ actor: 'test', action: 'hot.unwrap', outcome: 'success', requestId: 'gc-after' });
    expect((await stored()).length).toBe(before + 1);
    expect((await verifyAuditChain(ctx.store.dataSource, ctx.kms)).ok).toBe(true);
  });
});
