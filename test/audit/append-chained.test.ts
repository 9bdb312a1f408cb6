import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { appendChained } from '../../server/audit/chain';
import { verifyAuditChain } from '../../server/audit/verify';
import { chainHash, GENESIS_HASH } from '../../server/audit/chain-hash';
import { auditRow } from '../../server/repositories/audit';
import { scimServiceFor } from '../../scim/router';
import { ENTRA_CREATE_USER } from '../scim/idp-bodies';
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

  type Text = string | null;
  type Stored = { seq: unknown; prev_hash: string; hash: string; at: string; request_id: Text; actor: string; action: string } & {
    target_type: Text; target_id: Text; kek_uri: Text; outcome: string; detail: Text;
  };
  const COLUMNS = 'seq, prev_hash, hash, at, request_id, actor, action, target_type, target_id, kek_uri, outcome, detail';
  const stored = async () => (await ctx.store.dataSource.query(`SELECT ${COLUMNS} FROM audit_events ORDER BY seq`)) as Stored[];
  const head = async () => ((await ctx.store.dataSource.query('SELECT seq, hash FROM audit_chain_head')) as { seq: unknown; hash: string | null }[]).map((h) => [String(h.seq), h.hash]);
  const count = async (table: string) => Number(((await ctx.store.dataSource.query(`SELECT COUNT(*) AS n FROM ${table}`)) as { n: unknown }[])[0]!.n);
  // Values that escaping could mangle or be broken out of: quotes, backslashes, $n, a statement separator, non-ASCII.
  const AWKWARD = ["o'brien", 'back\\slash \\x27', "'); DELETE FROM audit_events; --", '$1 $$ $q$', 'ünï ☃ 𝄞', 'E\'\\\\\''];
  const row = (i: number): AuditEventRow =>
    auditRow({
      actor: `user:${AWKWARD[i % AWKWARD.length]}`, action: 'user.provision', outcome: i % 3 ? 'success' : 'failure', requestId: i % 4 ? `req-${i}` : undefined,
      targetType: 'user', targetId: AWKWARD[(i + 1) % AWKWARD.length], kekUri: i % 2 ? undefined : 'local://default', detail: i % 5 ? { note: AWKWARD[(i + 2) % AWKWARD.length], i } : undefined,
    });
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
    await expect(append([row(0), bad, row(2)])).rejects.toHaveProperty('message', expect.stringMatching(/null/i));
    expect(await stored()).toEqual(before);
    expect(await head()).toEqual(headBefore);

    await append([row(3), row(4)]);
    expect((await stored()).map((r) => Number(r.seq))).toEqual(Array.from({ length: before.length + 2 }, (_, i) => i + 1));
    expect(await verifyAuditChain(ctx.store.dataSource, ctx.kms)).toMatchObject({ ok: true, rows: before.length + 2 });
  });

  test('a SCIM create whose audit insert fails in the database writes no user, keys or audit row', async () => {
    const scim = scimServiceFor(ctx);
    const body = (n: number) => ({ ...JSON.parse(ENTRA_CREATE_USER), userName: `append-chained-${n}`, externalId: `ext-${n}` });
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
