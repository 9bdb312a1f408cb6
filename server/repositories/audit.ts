import type { EntityManager } from 'typeorm';
import { AuditEventEntity, type AuditEventRow, type AuditOutcome } from '../../entities';
import { nowIso } from '../../entities/columns';
import { appendChained } from '../audit/chain';

export interface AuditInput {
  actor: string;
  action: string;
  outcome: AuditOutcome;
  requestId?: string;
  targetType?: string;
  targetId?: string;
  kekUri?: string;
  /** Non-secret detail only (error codes, counts). Never key material. */
  detail?: Record<string, string | number | boolean>;
}

/**
 * Append-only: there is deliberately no update or delete here. Rows join the hash chain
 * (server/audit/chain.ts): inside a transaction they wait for `flush`, which Store.transaction
 * calls right before commit, so the chain head is locked for as short a time as possible.
 */
export class AuditRepository {
  private pending: AuditEventRow[] = [];

  constructor(private readonly m: EntityManager) {}

  /** Values are clamped to their columns: a client-supplied value must never make the record fail. */
  async append(e: AuditInput): Promise<void> {
    const row = auditRow(e);
    if (this.m.queryRunner?.isTransactionActive) {
      this.pending.push(row);
      return;
    }
    await this.m.transaction((tx) => appendChained(tx, [row]));
  }

  /** Chains and inserts the rows appended in this transaction; the caller commits right after. */
  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    await appendChained(this.m, this.pending.splice(0));
  }

  /** Newest first; for the CLI, tests and operators. */
  recent(limit = 100, where: { action?: string; targetId?: string; outcome?: AuditOutcome } = {}): Promise<AuditEventRow[]> {
    return this.m.find(AuditEventEntity, { where, order: { id: 'DESC' }, take: limit });
  }
}

/** The row an event is stored as; values are clamped to their columns. */
export function auditRow(e: AuditInput): AuditEventRow {
  return {
    at: nowIso(),
    requestId: clamp(e.requestId, 64),
    actor: clamp(e.actor, 255) ?? 'unknown',
    action: clamp(e.action, 64) ?? 'unknown',
    targetType: clamp(e.targetType, 32),
    targetId: clamp(e.targetId, 255),
    kekUri: clamp(e.kekUri, 512),
    outcome: e.outcome,
    detail: e.detail ? JSON.stringify(e.detail) : null,
  };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Well-formed too: a lone surrogate would not survive the database, and the row's hash would not verify. */
function clamp(v: string | undefined, max: number): string | null {
  if (v === undefined) return null;
  return (v.length <= max ? v : `${v.slice(0, max - 3)}...`).replace(LONE_SURROGATE, '\uFFFD');
}
