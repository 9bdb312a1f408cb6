import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * PostgreSQL: `sw` on userName / externalId over the live users, read from the index alone (issue 10).
 * The page's ids come from a range in the indexes' byte-wise operators (scim/filter-sql.ts), with
 * the columns the list orders by included, so a generic plan of a named statement costs no more
 * than one made for the prefix, and PostgreSQL stops planning it on every request (backend time per
 * `sw` request 0.8 → 0.25 ms in isolation at 10,000 users). The full-table prefix indexes of
 * 1764600000000 stay for the LIKE of an unnamed statement. The other engines have no INCLUDE, and
 * MariaDB no partial indexes.
 */
export class UsersLivePrefix1764810000000 implements MigrationInterface {
  name = 'UsersLivePrefix1764810000000';

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.options.type !== 'postgres') return;
    // IF NOT EXISTS: a large installation may have built them beforehand, CONCURRENTLY (docs/operations.md).
    await q.query('CREATE INDEX IF NOT EXISTS ix_users_live_user_name_prefix ON users (user_name_norm text_pattern_ops) INCLUDE (created_at, id) WHERE deleted_at IS NULL');
    await q.query('CREATE INDEX IF NOT EXISTS ix_users_live_external_id_prefix ON users (external_id text_pattern_ops) INCLUDE (created_at, id) WHERE deleted_at IS NULL');
  }

  async down(q: QueryRunner): Promise<void> {
    if (q.connection.options.type !== 'postgres') return;
    await q.query('DROP INDEX IF EXISTS ix_users_live_external_id_prefix');
    await q.query('DROP INDEX IF EXISTS ix_users_live_user_name_prefix');
  }
}
