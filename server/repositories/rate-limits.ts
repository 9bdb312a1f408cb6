import type { EntityManager } from 'typeorm';
import { RateLimitEntity } from '../../entities/scim';
import { uniqueViolation } from './db-errors';

/** Fixed-window counters in the database, so every replica counts against the same limit. */
export class RateLimitRepository {
  constructor(private readonly manager: EntityManager) {}

  /** Counts one hit in (bucket, window) and returns the window's total. Must not run inside a transaction. */
  async hit(bucket: string, windowStart: number): Promise<number> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await this.manager
        .createQueryBuilder()
        .update(RateLimitEntity)
        .set({ hits: () => 'hits + 1' })
        .where('bucket = :bucket AND window_start = :windowStart', { bucket, windowStart })
        .execute();
      if ((r.affected ?? 0) > 0) break;
      try {
        await this.manager.insert(RateLimitEntity, { bucket, window_start: windowStart, hits: 1 });
        break;
      } catch (err) {
        if (!uniqueViolation(err)) throw err; // another replica inserted first: update again
      }
    }
    const row = await this.manager.findOneBy(RateLimitEntity, { bucket, window_start: windowStart });
    return row?.hits ?? 1;
  }

  async deleteOlderThan(windowStart: number): Promise<void> {
    await this.manager.createQueryBuilder().delete().from(RateLimitEntity).where('window_start < :windowStart', { windowStart }).execute();
  }
}
