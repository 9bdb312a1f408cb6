import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A group's webhook event carries the whole group with a JWE per member (~0.5 KB each): a group
 * of ~120 members outgrew MariaDB/MySQL's TEXT (64 KB) and its writes failed. LONGTEXT there;
 * PostgreSQL and SQLite text has no such limit.
 */
export class OutboxPayloadLongtext1764000100000 implements MigrationInterface {
  name = 'OutboxPayloadLongtext1764000100000';

  private isMysql(q: QueryRunner): boolean {
    return ['mysql', 'mariadb'].includes(q.connection.options.type);
  }

  async up(q: QueryRunner): Promise<void> {
    if (this.isMysql(q)) await q.query('ALTER TABLE scim_outbox MODIFY payload LONGTEXT NOT NULL');
  }

  async down(q: QueryRunner): Promise<void> {
    if (this.isMysql(q)) await q.query('ALTER TABLE scim_outbox MODIFY payload TEXT NOT NULL');
  }
}
