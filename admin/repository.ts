import { In, type EntityManager } from 'typeorm';
import { AuditEventEntity, GroupEntity, UserEntity, type AuditEventRow } from '../entities';
import { SigningKeyEntity, type SigningKeyRow } from '../entities/auth';
import { OutboxRepository } from '../scim/repositories/outbox';
import type { OutboxRow } from '../entities/scim';
import { committedRead } from '../server/audit/search';
import type { Store } from '../server/repositories/store';

/** The console's read queries. Reads only: every write goes through an existing service. */
export class AdminQueries {
  constructor(private readonly store: Store) {}

  private read<T>(fn: (m: EntityManager) => Promise<T>): Promise<T> {
    return committedRead(this.store, fn);
  }

  /** Whether any of `groupIds` is the group named by id or displayName (case-insensitive, as SCIM names are unique). */
  /**
   * Whether one of the groups is CS_ADMIN_GROUP (by id or display name). Only groups the IdP
   * provisions over SCIM count: a group the cloud service manages through the backend API must
   * never decide who administers this server.
   */
  async anyGroupIs(groupIds: string[], idOrName: string): Promise<boolean> {
    if (groupIds.length === 0) return false;
    const byName = { id: In(groupIds), displayNameNorm: idOrName.toLowerCase(), origin: 'scim' as const };
    const where = groupIds.includes(idOrName) ? [byName, { id: idOrName, origin: 'scim' as const }] : byName;
    return this.read(async (m) => (await m.count(GroupEntity, { where })) > 0);
  }

  /** Audit events of SCIM callers (actor scim:<token id>) since `since`, newest first. */
  scimEvents(since: string, limit: number): Promise<AuditEventRow[]> {
    return this.read((m) =>
      m.createQueryBuilder(AuditEventEntity, 'a').where('a.actor LIKE :p AND a.at >= :since', { p: 'scim:%', since }).orderBy('a.id', 'DESC').limit(limit).getMany(),
    );
  }

  /** Refused /scim/v2 requests (`scim.refused`, scim/refusal-audit.ts) and other non-successes of SCIM callers, newest first. */
  scimRefusals(limit: number): Promise<AuditEventRow[]> {
    return this.read((m) =>
      m
        .createQueryBuilder(AuditEventEntity, 'a')
        .where('(a.action = :refused OR (a.actor LIKE :p AND a.outcome <> :ok))', { refused: 'scim.refused', p: 'scim:%', ok: 'success' })
        .orderBy('a.id', 'DESC')
        .limit(limit)
        .getMany(),
    );
  }

  /** Sign-in events: SAML logins, token redemptions, authorize refusals and console sign-ins. */
  signIns(limit: number, outcome?: 'refused'): Promise<AuditEventRow[]> {
    return this.read((m) => {
      const q = m.createQueryBuilder(AuditEventEntity, 'a').where('a.action IN (:...actions)', { actions: ['saml.login', 'oauth.authorize', 'oauth.token', 'admin.login'] });
      if (outcome) q.andWhere('a.outcome = :outcome', { outcome });
      return q.orderBy('a.id', 'DESC').limit(limit).getMany();
    });
  }

  /** userName by id, for the ids that exist. */
  async userNames(ids: string[]): Promise<Map<string, string>> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return new Map();
    const rows = await this.read((m) => m.find(UserEntity, { where: { id: In(unique) }, select: { id: true, userName: true } }));
    return new Map(rows.map((u) => [u.id, u.userName]));
  }

  activeSigningKey(): Promise<SigningKeyRow | null> {
    return this.read((m) => m.findOne(SigningKeyEntity, { where: { state: 'active' }, order: { createdAt: 'DESC' } }));
  }

  outboxStats() {
    return this.read((m) => new OutboxRepository(m).stats());
  }

  /** Pending events whose last delivery attempt failed, newest first. */
  async failedDeliveries(limit: number): Promise<OutboxRow[]> {
    return (await this.read((m) => new OutboxRepository(m).recent(200, 'pending'))).filter((r) => r.last_error !== null).slice(0, limit);
  }
}
