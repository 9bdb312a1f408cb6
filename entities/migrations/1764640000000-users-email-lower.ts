import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The backend API looks users up by email, exactly but case-insensitively (`LOWER(email) IN …`,
 * backend/repositories/backend-queries.ts): an expression index on PostgreSQL and SQLite serves it.
 * MariaDB 10.11 has no expression indexes (a lookup by email scans `users` there; by id and
 * userName it does not).
 */
export class UsersEmailLower1764640000000 implements MigrationInterface {
  name = 'UsersEmailLower1764640000000';

  private expressionIndexes(q: QueryRunner): boolean {
    return !['mysql', 'mariadb'].includes(q.connection.options.type);
  }

  async up(q: QueryRunner): Promise<void> {
    if (this.expressionIndexes(q)) await q.query('CREATE INDEX ix_users_email_lower ON users (LOWER(email))');
  }

  async down(q: QueryRunner): Promise<void> {
    if (this.expressionIndexes(q)) await q.query('DROP INDEX ix_users_email_lower');
  }
}
