import type { EntityManager } from 'typeorm';
import { AuditEventEntity, type AuditEventRow, type AuditOutcome } from '../../entities';
import { nowIso } from '../../entities/columns';

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

/** Append-only: there is deliberately no update or delete here. */
export class AuditRepository {
  constructor(private readonly m: EntityManager) {}

  /** Values are clamped to their columns: a client-supplied value must never make the record fail. */
  async append(e: AuditInput): Promise<void> {
    await this.m.insert(AuditEventEntity, auditRow(e));
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

function clamp(v: string | undefined, max: number): string | null {
  if (v === undefined) return null;
  return v.length <= max ? v : `${v.slice(0, max - 3)}...`;
}
