import { EntitySchema } from 'typeorm';
import { str, text, timestamp } from './columns';

/** Append-only record of every key operation. Holds identifiers, never key material. */
export type AuditOutcome = 'success' | 'failure' | 'refused';

export interface AuditEventRow {
  id?: number;
  at: string;
  requestId: string | null;
  actor: string;
  action: string;
  targetType: string | null;
  targetId: string | null;
  kekUri: string | null;
  outcome: AuditOutcome;
  /** JSON object with non-secret detail (error code, reason). */
  detail: string | null;
  /** Position in the audit chain = commit order, gapless (bigint: a string as drivers return it). */
  seq?: string;
  /** SHA-256 hex of the previous row's hash / of this row (server/audit/chain-hash.ts); null when written with CS_AUDIT_CHAIN=off. */
  prevHash?: string | null;
  hash?: string | null;
}

export const AuditEventEntity = new EntitySchema<AuditEventRow>({
  name: 'AuditEvent',
  tableName: 'audit_events',
  columns: {
    id: { name: 'id', type: 'integer', primary: true, generated: 'increment' },
    at: timestamp('at'),
    requestId: str('request_id', 64, true),
    actor: str('actor'),
    action: str('action', 64),
    targetType: str('target_type', 32, true),
    targetId: str('target_id', 255, true),
    kekUri: str('kek_uri', 512, true),
    outcome: str('outcome', 16),
    detail: text('detail', true),
    seq: { name: 'seq', type: 'bigint', unique: true },
    prevHash: str('prev_hash', 64, true),
    hash: str('hash', 64, true),
  },
});
