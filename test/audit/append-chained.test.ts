import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { appendChained } from '../../server/audit/chain';
import { verifyAuditChain } from '../../server/audit/verify';
import { awkwardAuditRow, chainHeadRows, expectStoredAndChained, storedAuditRows } from './chain-rows';
import { scimServiceFor } from '../../scim/router';
import { entraCreateUser } from '../scim/idp-bodies';
import type { AuditEventRow } from '../../entities';

/**
 * The transactional audit insert (server/audit/chain.ts, appendChained, plain SQL since issue 10):
 * rows are stored byte for byte and chained as documented, a failed batch writes nothing and
 * leaves the head, and a SCIM create whose audit insert fails leaves no user behind.
 */
describe.each(testDatabaseNames())('appendChained (%s)', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  const stored = () => storedAuditRows(ctx.store.dataSource);
  const head = () => chainHeadRows(ctx.store.dataSource);
  const count = async (table: string) => Number(((await ctx.store.dataSource.query(`SELECT COUNT(*) AS n FROM ${table}`)) as { n: unknown }[])[0]!.n);
  // Nulls in every nullable column, and a failure outcome, now and then.
  const row = (i: number): AuditEventRow =>
    awkwardAuditRow(i, { action: 'user.provision', outcome: i % 3 ? 'success' : 'failure', requestId: i % 4 ? `req-${i}` : undefined, ...(i % 5 ? {} : { detail: undefined }) });
  // Inside a store transaction, as AuditRepository.flush calls it right before commit.
  const append = (rows: AuditEventRow[]) => ctx.store.transaction((tx) => appendChained(tx.manager, rows));

  test('batches and single rows are stored exactly and chained as documented; the chain verifies', async () => {
    const batch = Array.from({ length: 7 }, (_, i) => row(i));
    const single = Array.from({ length: 5 }, (_, i) => row(i + 7));
    const expected = [...batch, ...single].map((r) => ({ ...r }));
    const [[start, startHash]] = await head();
    const n0 = Number(start);
    await append(batch);
    for (const r of single) await append([r]);

    const prev = expectStoredAndChained((await stored()).slice(n0), expected, n0, startHash);
    expect(await head()).toEqual([[String(n0 + 12), prev]]);
    expect(await verifyAuditChain(ctx.store.dataSource, ctx.kms)).toMatchObject({ ok: true, rows: n0 + 12 });
  });

  test('a batch with one bad row writes none of them and leaves the head; the next batch continues the chain', async () => {
    const before = await stored();
    const headBefore = await head();
    const bad = { ...row(1), actor: null as unknown as string }; // NOT NULL on every database
    await expect(append([row(0), bad, row(2)])).rejects.toHaveProperty('message', expect.stringMatching(/null/i));
    expect(await stored()).toEqual(before);
    expect(await head()).toEqual(headBefore);

    await append([row(3), row(4)]);
    expect((await stored()).map((r) => Number(r.seq))).toEqual(Array.from({ length: before.length + 2 }, (_, i) => i + 1));
    expect(await verifyAuditChain(ctx.store.dataSource, ctx.kms)).toMatchObject({ ok: true, rows: before.length + 2 });
  });

  test('a group write auditing thousands of members goes in chunks under the drivers\' parameter limits (PostgreSQL 65,535 = 5,461 rows of 12); the chain verifies', async () => {
    const [[start, startHash]] = await head();
    const n0 = Number(start);
    const many = Array.from({ length: 5_500 }, (_, i) => row(i));
    const expected = many.map((r) => ({ ...r }));
    await append(many);
    const prev = expectStoredAndChained((await stored()).slice(n0), expected, n0, startHash);
    expect(await head()).toEqual([[String(n0 + many.length), prev]]);
    expect(await verifyAuditChain(ctx.store.dataSource, ctx.kms)).toMatchObject({ ok: true, rows: n0 + many.length });
  });

  test('a SCIM create whose audit insert fails in the database writes no user, keys or audit row', async () => {
    const scim = scimServiceFor(ctx);
    const body = (n: number) => entraCreateUser(`append-chained-${n}`, `ext-${n}`);
    const [users, keys, audit, headBefore] = [await count('users'), await count('user_keys'), await stored(), await head()];
    // The audit table gone for a moment: the users and user_keys inserts succeed, the audit insert fails.
    await ctx.store.dataSource.query('ALTER TABLE audit_events RENAME TO audit_events_gone');
    try {
      await expect(scim.createUser(body(1), { actor: 'test', requestId: 'r1' })).rejects.toThrow(/audit_events/);
    } finally {
      await ctx.store.dataSource.query('ALTER TABLE audit_events_gone RENAME TO audit_events');
    }
    expect([await count('users'), await count('user_keys'), await stored(), await head()]).toEqual([users, keys, audit, headBefore]);

    await scim.createUser(body(2), { actor: 'test', requestId: 'r2' });
    expect([await count('users'), await count('user_keys')]).toEqual([users + 1, keys + 1]);
    expect((await verifyAuditChain(ctx.store.dataSource, ctx.kms)).ok).toBe(true);
  });
});
