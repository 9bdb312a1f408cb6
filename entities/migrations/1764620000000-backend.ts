import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';
import { intCol, strCol, textCol, timeCol } from './table-columns';

/**
 * The cloud service's own API (issue 11): which side manages a group (`scim`: the IdP, read-only
 * to the backend API; `app`: the backend API, never shown to SCIM), a per-token client-address
 * allow-list, and the backend API's Idempotency-Key records (in the database so replicas share them).
 */
export class Backend1764620000000 implements MigrationInterface {
  name = 'Backend1764620000000';

  async up(q: QueryRunner): Promise<void> {
    // Plain ALTER TABLE on every engine: TypeORM's SQLite addColumn rebuilds the table, and
    // dropping `groups` to rebuild it would cascade into its keys and members when foreign keys are on.
    const t = (name: string) => q.connection.driver.escape(name);
    await q.query(`ALTER TABLE ${t('groups')} ADD COLUMN ${t('origin')} varchar(8) NOT NULL DEFAULT 'scim'`);
    await q.query(`ALTER TABLE ${t('api_tokens')} ADD COLUMN ${t('allowed_addresses')} varchar(1000) NULL`);
    const mysql = ['mysql', 'mariadb'].includes(q.connection.options.type);
    await q.createTable(
      new Table({
        name: 'backend_idempotency_keys',
        columns: [
          { ...strCol('token_id', 32), isPrimary: true },
          { ...strCol('idem_key', 255), isPrimary: true },
          strCol('request_hash', 64),
          { ...intCol('status'), isNullable: true },
          // A group response carries a JWE per member: LONGTEXT on MariaDB/MySQL, as the outbox's payload.
          { ...textCol('response', true), ...(mysql ? { type: 'longtext' } : {}) },
          timeCol('created_at'),
          timeCol('expires_at'),
        ],
        indices: [{ name: 'ix_backend_idempotency_expires', columnNames: ['expires_at'] }],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('backend_idempotency_keys');
    const t = (name: string) => q.connection.driver.escape(name);
    await q.query(`ALTER TABLE ${t('api_tokens')} DROP COLUMN ${t('allowed_addresses')}`);
    await q.query(`ALTER TABLE ${t('groups')} DROP COLUMN ${t('origin')}`);
  }
}
