import { IsNull, LessThanOrEqual, type EntityManager } from 'typeorm';
import { IdempotencyEntity, type IdempotencyRow } from '../../entities/backend';

/**
 * Idempotency-Key records. The primary key (token, key) lets exactly one request claim a key; every
 * later change to a claim is a compare-and-set on its claim id, so of two processes that both saw a
 * row only one changes it.
 */
export class IdempotencyRepository {
  constructor(private readonly m: EntityManager) {}

  /** Inserts a claim; throws the driver's unique violation when the key is taken. */
  async claim(row: IdempotencyRow): Promise<void> {
    await this.m.insert(IdempotencyEntity, row);
  }

  find(tokenId: string, idemKey: string): Promise<IdempotencyRow | null> {
    return this.m.findOne(IdempotencyEntity, { where: { tokenId, idemKey } });
  }

  /**
   * Replaces an expired record (a finished one past its 24 h, or a claim whose lease ran out) with
   * a new claim, if it still is the one read (`oldClaimId`) and still expired at `now`; false when
   * another request changed it first.
   */
  async takeOver(oldClaimId: string | null, now: string, row: IdempotencyRow): Promise<boolean> {
    const { tokenId, idemKey, ...set } = row;
    const r = await this.m.update(IdempotencyEntity, { tokenId, idemKey, claimId: oldClaimId ?? IsNull(), expiresAt: LessThanOrEqual(now) }, set);
    return r.affected === 1;
  }

  /** Stores the response of the claim `claimId`, if it still holds the key; false when it does not. */
  async complete(tokenId: string, idemKey: string, claimId: string, status: number, response: string, expiresAt: string): Promise<boolean> {
    const r = await this.m.update(IdempotencyEntity, { tokenId, idemKey, claimId, status: IsNull() }, { status, response, expiresAt });
    return r.affected === 1;
  }

  /** Deletes the claim `claimId` if it still holds the key and stored no response. */
  async release(tokenId: string, idemKey: string, claimId: string): Promise<void> {
    await this.m.delete(IdempotencyEntity, { tokenId, idemKey, claimId, status: IsNull() });
  }

  /** Deletes records past their expiry; returns how many. */
  async purgeExpired(now: string): Promise<number> {
    const r = await this.m.createQueryBuilder().delete().from(IdempotencyEntity).where('expires_at <= :now', { now }).execute();
    return r.affected ?? 0;
  }
}
