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

  async append(e: AuditInput): Promise<void> {
    await this.m.insert(AuditEventEntity, {
      at: nowIso(),
      requestId: e.requestId ?? null,
      actor: e.actor,
      action: e.action,
      targetType: e.targetType ?? null,
      targetId: e.targetId ?? null,
      kekUri: e.kekUri ?? null,
      outcome: e.outcome,
      detail: e.detail ? JSON.stringify(e.detail) : null,
    });
  }

  /** Newest first; for the CLI, tests and operators. */
  recent(limit = 100, where: { action?: string; targetId?: string; outcome?: AuditOutcome } = {}): Promise<AuditEventRow[]> {
    return this.m.find(AuditEventEntity, { where, order: { id: 'DESC' }, take: limit });
  }
}
