import type { DataSource } from 'typeorm';
import { chainHash, GENESIS_HASH } from '../../server/audit/chain-hash';
import { auditRow } from '../../server/repositories/audit';
import type { AuditEventRow } from '../../entities';

/** What the audit writers' tests (hot-insert, append-chained) share: awkward rows, and checks of what was stored. */

type Text = string | null;
export type StoredAuditRow = { seq: unknown; prev_hash: string; hash: string; at: string; request_id: Text; actor: string; action: string } & {
  target_type: Text; target_id: Text; kek_uri: Text; outcome: string; detail: Text;
};
const COLUMNS = 'seq, prev_hash, hash, at, request_id, actor, action, target_type, target_id, kek_uri, outcome, detail';

export const storedAuditRows = async (ds: DataSource) => (await ds.query(`SELECT ${COLUMNS} FROM audit_events ORDER BY seq`)) as StoredAuditRow[];
export const chainHeadRows = async (ds: DataSource) =>
  ((await ds.query('SELECT seq, hash FROM audit_chain_head')) as { seq: unknown; hash: string | null }[]).map((h) => [String(h.seq), h.hash] as const);

// Values that escaping could mangle or be broken out of: quotes, backslashes, $n, a statement separator, non-ASCII.
export const AWKWARD = ["o'brien", 'back\\slash \\x27', "'); DELETE FROM audit_events; --", '$1 $$ $q$', 'ünï ☃ 𝄞', 'E\'\\\\\''];

export const awkwardAuditRow = (i: number, over: Partial<Parameters<typeof auditRow>[0]> = {}): AuditEventRow =>
  auditRow({
    actor: `user:${AWKWARD[i % AWKWARD.length]}`, action: 'password-key.unwrap', outcome: 'success', requestId: `req-${i}`, targetType: 'user',
    targetId: AWKWARD[(i + 1) % AWKWARD.length], kekUri: i % 2 ? undefined : 'local://default', detail: { note: AWKWARD[(i + 2) % AWKWARD.length], i }, ...over,
  });

/**
 * `rows` (stored, in seq order) hold exactly `expected`'s values, numbered from n0 + 1 and chained
 * from `startHash` by the documented encoding (recomputed here, not read back from chain.ts).
 * Returns the last hash.
 */
export function expectStoredAndChained(rows: StoredAuditRow[], expected: AuditEventRow[], n0: number, startHash: string | null): string {
  expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: expected.length }, (_, i) => n0 + i + 1));
  let prev = startHash ?? GENESIS_HASH;
  rows.forEach((r, i) => {
    const e = expected[i]!;
    expect([r.at, r.request_id, r.actor, r.action, r.target_type, r.target_id, r.kek_uri, r.outcome, r.detail]).toEqual([e.at, e.requestId, e.actor, e.action, e.targetType, e.targetId, e.kekUri, e.outcome, e.detail]);
    expect(r.prev_hash).toBe(prev);
    expect(r.hash).toBe(chainHash({ ...e, seq: String(n0 + i + 1), prevHash: prev }));
    prev = r.hash;
  });
  return prev;
}
