import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { OutboxEntity, type OutboxRow } from '../../entities/scim';
import { placeholderFor, placeholderList } from '../../server/repositories/placeholders';

export interface NewOutboxEvent {
  resourceType: 'User' | 'Group';
  resourceId: string;
  eventType: string;
  /** JSON-serialisable; becomes the webhook body's `data`. */
  data: unknown;
  /** No webhook, only the change feed (GET /backend/v1/changes) reads it: recorded as delivered, so housekeeping removes it after 30 days. */
  feedOnly?: boolean;
}

export interface OutboxStats {
  pending: number;
  delivered: number;
  oldestPendingAt: string | null;
  lastError: string | null;
}

const OUTBOX_INSERT_COLUMNS = 'event_id, resource_type, resource_id, event_type, payload, status, attempts, created_at, next_attempt_at, delivered_at, last_error';

/**
 * The delivery outbox. `enqueue` runs in the caller's transaction (the change and its event
 * commit together). Delivery claims the oldest pending event of each resource with a lease, so
 * events of one resource go out in order and two replicas do not send the same one at once.
 */
export class OutboxRepository {
  constructor(private readonly manager: EntityManager) {}

  /** A plain parameterised INSERT (issue 10: TypeORM's insert building and RETURNING cost 0.02–0.06 ms CPU an event). */
  async enqueue(e: NewOutboxEvent, now: string = new Date().toISOString()): Promise<string> {
    const eventId = `msg_${randomUUID()}`;
    const payload = JSON.stringify({ type: e.eventType, timestamp: now, data: e.data });
    await this.manager.query(`INSERT INTO scim_outbox (${OUTBOX_INSERT_COLUMNS}) VALUES (${placeholderList(placeholderFor(this.manager.connection.options.type), 11)})`, [
      eventId, e.resourceType, e.resourceId, e.eventType, payload, e.feedOnly ? 'delivered' : 'pending', 0, now, now, e.feedOnly ? now : null, null,
    ]);
    return eventId;
  }

  /** Pending events that are due and are the oldest pending event of their resource. */
  async due(now: string, limit: number): Promise<OutboxRow[]> {
    return this.manager
      .createQueryBuilder(OutboxEntity, 'o')
      .where('o.status = :pending AND o.next_attempt_at <= :now', { pending: 'pending', now })
      .andWhere(
        'NOT EXISTS (SELECT 1 FROM scim_outbox e WHERE e.resource_id = o.resource_id AND e.status = :pending2 AND e.seq < o.seq)',
        { pending2: 'pending' },
      )
      .orderBy('o.seq', 'ASC')
      .limit(limit)
      .getMany();
  }

  /** Takes a lease on an event; false when another worker took it first. */
  async claim(row: OutboxRow, leaseUntil: string): Promise<boolean> {
    const r = await this.manager
      .createQueryBuilder()
      .update(OutboxEntity)
      .set({ next_attempt_at: leaseUntil })
      .where('seq = :seq AND status = :pending AND next_attempt_at = :old', { seq: row.seq, pending: 'pending', old: row.next_attempt_at })
      .execute();
    return (r.affected ?? 0) > 0;
  }

  /** Makes a pending event due now (an operator's retry after failed deliveries); false when no pending event has this number. */
  async retryNow(seq: number, now: string): Promise<boolean> {
    const r = await this.manager.createQueryBuilder().update(OutboxEntity).set({ next_attempt_at: now }).where('seq = :seq AND status = :pending', { seq, pending: 'pending' }).execute();
    return (r.affected ?? 0) > 0;
  }

  async markDelivered(seq: number, at: string, attempts: number): Promise<void> {
    await this.manager.update(OutboxEntity, { seq }, { status: 'delivered', delivered_at: at, attempts, last_error: null });
  }

  async markFailed(seq: number, attempts: number, nextAttemptAt: string, error: string): Promise<void> {
    await this.manager.update(OutboxEntity, { seq }, { attempts, next_attempt_at: nextAttemptAt, last_error: error.slice(0, 500) });
  }

  async stats(): Promise<OutboxStats> {
    const rows = await this.manager
      .createQueryBuilder(OutboxEntity, 'o')
      .select('o.status', 'status')
      .addSelect('COUNT(*)', 'n')
      .addSelect('MIN(o.created_at)', 'oldest')
      .groupBy('o.status')
      .getRawMany<{ status: string; n: string | number; oldest: string }>();
    const pending = rows.find((r) => r.status === 'pending');
    const delivered = rows.find((r) => r.status === 'delivered');
    const failing = await this.manager
      .createQueryBuilder(OutboxEntity, 'o')
      .where('o.status = :p AND o.last_error IS NOT NULL', { p: 'pending' })
      .orderBy('o.seq', 'DESC')
      .limit(1)
      .getOne();
    return {
      pending: Number(pending?.n ?? 0),
      delivered: Number(delivered?.n ?? 0),
      oldestPendingAt: pending?.oldest ?? null,
      lastError: failing?.last_error ?? null,
    };
  }

  async recent(limit: number, status?: string): Promise<OutboxRow[]> {
    const qb = this.manager.createQueryBuilder(OutboxEntity, 'o').orderBy('o.seq', 'DESC').limit(limit);
    if (status) qb.where('o.status = :status', { status });
    return qb.getMany();
  }

  /** Deletes delivered events older than `before` (housekeeping). */
  async purgeDelivered(before: string): Promise<number> {
    const r = await this.manager
      .createQueryBuilder()
      .delete()
      .from(OutboxEntity)
      .where('status = :d AND delivered_at < :before', { d: 'delivered', before })
      .execute();
    return r.affected ?? 0;
  }
}
