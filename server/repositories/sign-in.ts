import type { EntityManager } from 'typeorm';
import { AuthCodeEntity, SamlRequestEntity, SigningKeyEntity, type AuthCodeRow, type SigningKeyRow } from '../../entities';
import type { ConsumeResult, SamlRequestRecord, SamlRequestStore } from '../auth/saml-request-cache';

/**
 * One-time protocol state. "Use once" is a single conditional UPDATE (… WHERE consumed_at IS NULL
 * AND expires_at > now): the database decides which of two racing requests wins, on every engine.
 */
async function consumeOnce(m: EntityManager, entity: typeof SamlRequestEntity | typeof AuthCodeEntity, key: string, keyValue: string, now: Date): Promise<boolean> {
  const at = now.toISOString();
  const result = await m
    .createQueryBuilder()
    .update(entity)
    .set({ consumedAt: at })
    .where(`${key} = :keyValue`, { keyValue })
    .andWhere('consumed_at IS NULL')
    .andWhere('expires_at > :at', { at })
    .execute();
  return result.affected === 1;
}

export class SamlRequestsRepository implements SamlRequestStore {
  constructor(private readonly m: EntityManager) {}

  async save(r: SamlRequestRecord): Promise<void> {
    await this.m.insert(SamlRequestEntity, {
      id: r.id,
      issuedAt: r.issuedAt,
      expiresAt: r.expiresAt.toISOString(),
      consumedAt: null,
      clientId: r.pending.clientId,
      redirectUri: r.pending.redirectUri,
      codeChallenge: r.pending.codeChallenge,
      state: r.pending.state ?? null,
      createdAt: new Date().toISOString(),
    });
  }

  async peek(id: string, now: Date): Promise<SamlRequestRecord | undefined> {
    if (id.length > 128) return undefined;
    const row = await this.m.findOne(SamlRequestEntity, { where: { id } });
    if (!row || row.consumedAt !== null || row.expiresAt <= now.toISOString()) return undefined;
    return toRecord(row);
  }

  async consume(id: string, now: Date): Promise<ConsumeResult> {
    if (id.length > 128) return { ok: false, reason: 'unknown' };
    const won = await consumeOnce(this.m, SamlRequestEntity, 'id', id, now);
    const row = await this.m.findOne(SamlRequestEntity, { where: { id } });
    if (won && row) return { ok: true, record: toRecord(row) };
    if (!row) return { ok: false, reason: 'unknown' };
    return { ok: false, reason: row.consumedAt !== null ? 'replayed' : 'expired' };
  }

  async purge(before: Date): Promise<number> {
    const r = await this.m.createQueryBuilder().delete().from(SamlRequestEntity).where('expires_at < :at', { at: before.toISOString() }).execute();
    return r.affected ?? 0;
  }
}

function toRecord(row: { id: string; issuedAt: string; expiresAt: string; clientId: string; redirectUri: string; codeChallenge: string; state: string | null }): SamlRequestRecord {
  return {
    id: row.id,
    issuedAt: row.issuedAt,
    expiresAt: new Date(row.expiresAt),
    pending: { clientId: row.clientId, redirectUri: row.redirectUri, codeChallenge: row.codeChallenge, state: row.state ?? undefined },
  };
}

export type CodeRedemption = { ok: true; code: AuthCodeRow } | { ok: false; reason: 'unknown' | 'expired' | 'reused' };

export class AuthCodesRepository {
  constructor(private readonly m: EntityManager) {}

  async insert(row: AuthCodeRow): Promise<void> {
    await this.m.insert(AuthCodeEntity, row);
  }

  /** Uses the code up; only the first caller before expiry gets it. */
  async redeem(codeHash: string, now: Date): Promise<CodeRedemption> {
    const won = await consumeOnce(this.m, AuthCodeEntity, 'code_hash', codeHash, now);
    const row = await this.m.findOne(AuthCodeEntity, { where: { codeHash } });
    if (won && row) return { ok: true, code: row };
    if (!row) return { ok: false, reason: 'unknown' };
    return { ok: false, reason: row.consumedAt !== null ? 'reused' : 'expired' };
  }

  async purge(before: Date): Promise<number> {
    const r = await this.m.createQueryBuilder().delete().from(AuthCodeEntity).where('expires_at < :at', { at: before.toISOString() }).execute();
    return r.affected ?? 0;
  }
}

export class SigningKeysRepository {
  constructor(private readonly m: EntityManager) {}

  async insert(row: SigningKeyRow): Promise<void> {
    await this.m.insert(SigningKeyEntity, row);
  }

  /** The highest generation so far (0 when there is none). */
  async maxGeneration(): Promise<number> {
    const r = await this.m.getRepository(SigningKeyEntity).createQueryBuilder('k').select('MAX(k.generation)', 'g').getRawOne<{ g: number | string | null }>();
    return Number(r?.g ?? 0);
  }

  /** Retires every active key except `keepKid`. */
  async retireOthers(keepKid: string, at: string): Promise<void> {
    await this.m
      .createQueryBuilder()
      .update(SigningKeyEntity)
      .set({ state: 'retired', retiredAt: at })
      .where('state = :active', { active: 'active' })
      .andWhere('kid <> :kid', { kid: keepKid })
      .execute();
  }

  /** Active keys and keys retired at or after `retiredSince`, newest first. */
  async published(retiredSince: string): Promise<SigningKeyRow[]> {
    return this.m
      .getRepository(SigningKeyEntity)
      .createQueryBuilder('k')
      .where('k.state = :active', { active: 'active' })
      .orWhere('k.retired_at >= :since', { since: retiredSince })
      .orderBy('k.created_at', 'DESC')
      .getMany();
  }

}
