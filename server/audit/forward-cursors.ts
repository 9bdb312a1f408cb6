import type { EntityManager } from 'typeorm';
import { AuditForwardCursorEntity, type AuditForwardCursorRow } from '../../entities';
import { uniqueViolation } from '../repositories/db-errors';

/**
 * audit_forward_cursors: per sink, the last forwarded seq and a lease, so that across worker
 * processes and replicas one forwarder at a time sends to a sink (like group_rotation_turns).
 * Each call is one short statement of its own: never hold it inside a transaction.
 */
export class ForwardCursorRepository {
  constructor(private readonly m: EntityManager) {}

  /**
   * Takes or renews the sink's lease for `holder`; a sink seen for the first time starts at
   * `initialSeq`. Returns the cursor when held, null while another holder's lease runs.
   */
  async hold(sink: string, holder: string, now: string, until: string, initialSeq: () => Promise<number>): Promise<number | null> {
    const taken = await this.m
      .createQueryBuilder()
      .update(AuditForwardCursorEntity)
      .set({ holder, leaseExpiresAt: until })
      .where('sink = :sink AND (holder = :holder OR holder IS NULL OR lease_expires_at < :now)', { sink, holder, now })
      .execute();
    // Not taken: the row may not exist yet (insert it), or be held, or (MariaDB counts an UPDATE that
    // changed nothing as no row) be ours already — the read below decides.
    if ((taken.affected ?? 0) === 0 && !(await this.read(sink))) {
      try {
        await this.m.insert(AuditForwardCursorEntity, { sink, lastSeq: String(await initialSeq()), holder, leaseExpiresAt: until, updatedAt: now, lastError: null });
      } catch (err) {
        if (!uniqueViolation(err)) throw err; // another process created it first
      }
    }
    const row = await this.read(sink);
    return row && row.holder === holder ? Number(row.lastSeq) : null;
  }

  private read(sink: string): Promise<AuditForwardCursorRow | null> {
    return this.m.findOne(AuditForwardCursorEntity, { where: { sink } });
  }

  /** Moves the cursor forward if `holder` still holds the lease; false when it was taken over meanwhile. */
  async advance(sink: string, holder: string, seq: number, now: string): Promise<boolean> {
    const r = await this.m
      .createQueryBuilder()
      .update(AuditForwardCursorEntity)
      .set({ lastSeq: String(seq), updatedAt: now, lastError: null })
      .where('sink = :sink AND holder = :holder AND last_seq < :seq', { sink, holder, seq })
      .execute();
    return (r.affected ?? 0) > 0;
  }

  async failed(sink: string, holder: string, error: string, now: string): Promise<void> {
    await this.m.createQueryBuilder().update(AuditForwardCursorEntity).set({ lastError: error.slice(0, 255), updatedAt: now }).where('sink = :sink AND holder = :holder', { sink, holder }).execute();
  }

  /** Gives the lease back (shutdown), so another process takes over at once instead of at expiry. */
  async release(sink: string, holder: string): Promise<void> {
    await this.m.createQueryBuilder().update(AuditForwardCursorEntity).set({ holder: null, leaseExpiresAt: null }).where('sink = :sink AND holder = :holder', { sink, holder }).execute();
  }

  list(): Promise<AuditForwardCursorRow[]> {
    return this.m.find(AuditForwardCursorEntity, { order: { sink: 'ASC' } });
  }
}
