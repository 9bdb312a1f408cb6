import { EntitySchema } from 'typeorm';
import { str, timestamp } from './columns';

/**
 * How far each audit forwarding sink has got (server/audit/forward.ts), and who forwards to it:
 * the row doubles as a lease so that across workers and replicas one process at a time sends to a
 * sink. `lastSeq` is the audit seq of the last event the sink has taken (bigint: a string as drivers return it).
 */
export interface AuditForwardCursorRow {
  sink: string;
  lastSeq: string;
  holder: string | null;
  leaseExpiresAt: string | null;
  updatedAt: string;
  /** Why the last attempt failed (name and code only), null once a send succeeds. */
  lastError: string | null;
}

export const AuditForwardCursorEntity = new EntitySchema<AuditForwardCursorRow>({
  name: 'AuditForwardCursor',
  tableName: 'audit_forward_cursors',
  columns: {
    sink: { ...str('sink', 255), primary: true },
    lastSeq: { name: 'last_seq', type: 'bigint' },
    holder: str('holder', 64, true),
    leaseExpiresAt: timestamp('lease_expires_at', true),
    updatedAt: timestamp('updated_at'),
    lastError: str('last_error', 255, true),
  },
});
