import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * backend_idempotency_keys.claim_id: the random id of the request that holds an in-progress
 * Idempotency-Key, so a retry can take over a claim whose process died (its lease expired) by
 * compare-and-set, and the first request can tell, inside its own write transaction, that it no
 * longer holds the key (backend/idempotency.ts). Rows from before have none (NULL): they keep their
 * 24-hour expiry.
 */
export class IdempotencyClaims1764790000000 implements MigrationInterface {
  name = 'IdempotencyClaims1764790000000';

  async up(q: QueryRunner): Promise<void> {
    // Plain ALTER TABLE on every engine, as in Backend1764620000000 (TypeORM's SQLite addColumn rebuilds the table).
    const t = (name: string) => q.connection.driver.escape(name);
    await q.query(`ALTER TABLE ${t('backend_idempotency_keys')} ADD COLUMN ${t('claim_id')} varchar(32) NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    const t = (name: string) => q.connection.driver.escape(name);
    await q.query(`ALTER TABLE ${t('backend_idempotency_keys')} DROP COLUMN ${t('claim_id')}`);
  }
}
