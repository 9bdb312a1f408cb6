import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { verifyAuditChain } from '../../server/audit/verify';
import { awkwardAuditRow as row, chainHeadRows, expectStoredAndChained, storedAuditRows } from './chain-rows';

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

  const stored = () => storedAuditRows(ctx.store.dataSource);
  const head = () => chainHeadRows(ctx.store.dataSource);

  test('a batch chains like the same rows one by one; every value is stored exactly; the chain verifies', async () => {
    const batch = Array.from({ length: 6 }, (_, i) => row(i));
    const single = Array.from({ length: 6 }, (_, i) => row(i + 6));
    const expected = [...batch, ...single].map((r) => ({ ...r }));
    const [[start, startHash]] = await head();
    const n0 = Number(start);
    await ctx.store.hot.insertAudit(batch);
    for (const r of single) await ctx.store.hot.insertAudit([r]);

    const prev = expectStoredAndChained((await stored()).slice(n0), expected, n0, startHash);
    expect(await head()).toEqual([[String(n0 + 12), prev]]);
    expect(await verifyAuditChain(ctx.store.dataSource, ctx.kms)).toMatchObject({ ok: true, rows: n0 + 12 });
  });

  test('batches of many sizes, again and again and interleaved (PostgreSQL names one statement per size up to 32), chain like single rows', async () => {
    const sizes = [1, 3, 1, 33, 3, 32, 1];
    const batches = sizes.map((n, b) => Array.from({ length: n }, (_, i) => row(b * 40 + i)));
    const expected = batches.flat().map((r) => ({ ...r }));
    const [[start, startHash]] = await head();
    const n0 = Number(start);
    for (const batch of batches) await ctx.store.hot.insertAudit(batch);

    const prev = expectStoredAndChained((await stored()).slice(n0), expected, n0, startHash);
    expect(await head()).toEqual([[String(n0 + expected.length), prev]]);
    expect(await verifyAuditChain(ctx.store.dataSource, ctx.kms)).toMatchObject({ ok: true, rows: n0 + expected.length });
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
