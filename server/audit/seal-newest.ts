import type { KmsRegistry } from '../../kms-adapters/registry';
import type { ChainSql, StoredSeal } from './chain-sql';
import { sealAuthentic } from './seal-check';

/** How far a seal's `sealed_at` may be ahead of this clock (clock skew between replicas). */
const FUTURE_SKEW_MS = 60_000;
/** Seal rows tried, newest first: bounds the KMS calls a flood of forged rows can cost. */
const MAX_CANDIDATES = 100;

export interface NewestSeal {
  /** The newest seal the KMS vouches for, at or before the head. */
  seal?: StoredSeal;
  /** An authentic seal beyond the head: the head was rewound (rows deleted with the head moved back). */
  beyondHead?: StoredSeal;
}

/**
 * The newest authentic periodic seal. Seal rows live in the database an administrator can write, so
 * none is trusted for its position or age until the KMS opens it: a row that does not verify, or
 * whose sealed_at is in the future, is reported through `warn` and skipped.
 */
export async function newestAuthenticSeal(sql: ChainSql, kms: KmsRegistry, headSeq: bigint, warn: (fields: Record<string, unknown>, message: string) => void): Promise<NewestSeal> {
  const rows = await sql.query(`SELECT id, kind, seq, hash, envelope, sealed_at FROM audit_seals WHERE kind = 'seal' ORDER BY seq DESC LIMIT ${MAX_CANDIDATES}`);
  const found: NewestSeal = {};
  for (const r of rows) {
    const s: StoredSeal = { id: Number(r.id), kind: 'seal', seq: BigInt(String(r.seq)), hash: String(r.hash), envelope: String(r.envelope), sealedAt: String(r.sealed_at) };
    const at = Date.parse(s.sealedAt);
    if (Number.isNaN(at) || at > Date.now() + FUTURE_SKEW_MS) {
      warn({ seq: s.seq.toString(), id: s.id, sealedAt: s.sealedAt }, 'audit seal row ignored: sealed_at is in the future or not a time (forged or edited)');
      continue;
    }
    if (!(await sealAuthentic(kms, s))) {
      warn({ seq: s.seq.toString(), id: s.id }, 'audit seal row ignored: it does not verify under the KMS (forged or edited)');
      continue;
    }
    if (s.seq > headSeq) {
      found.beyondHead ??= s;
      continue;
    }
    found.seal = s;
    return found;
  }
  if (rows.length === MAX_CANDIDATES) warn({ tried: MAX_CANDIDATES }, 'audit seals: none of the newest seal rows verifies; sealing from the start of the chain');
  return found;
}
