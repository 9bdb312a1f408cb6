import type { EntityManager } from 'typeorm';
import { IdempotencyEntity, type IdempotencyRow } from '../../entities/backend';

/** Idempotency-Key records. The primary key (token, key) lets exactly one request claim a key. */
export class IdempotencyRepository {
  constructor(private readonly m: EntityManager) {}

  /** Inserts a claim; throws the driver's unique violation when the key is taken. */
  async claim(row: IdempotencyRow): Promise<void> {
    await this.m.insert(IdempotencyEntity, row);
  }

  find(tokenId: string, idemKey: string): Promise<IdempotencyRow | null> {
    return this.m.findOne(IdempotencyEntity, { where: { tokenId, idemKey } });
  }

  async complete(tokenId: string, idemKey: string, status: number, response: string): Promise<void> {
    await this.m.update(IdempotencyEntity, { tokenId, idemKey }, { status, response });
  }

  async remove(tokenId: string, idemKey: string): Promise<void> {
    await this.m.delete(IdempotencyEntity, { tokenId, idemKey });
  }

  /** Deletes records past their expiry; returns how many. */
  async purgeExpired(now: string): Promise<number> {
    const r = await this.m.createQueryBuilder().delete().from(IdempotencyEntity).where('expires_at <= :now', { now }).execute();
    return r.affected ?? 0;
  }
}
