import { TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Indexes for SCIM lists over many users (issue 10; query plans checked with EXPLAIN on each engine):
 * - live users in list order (`deleted_at IS NULL ORDER BY created_at, id`): pages deep into the
 *   list, and the count, walk this index instead of sorting the whole table (SQLite: 15 → 1.5 ms at
 *   10,000 users, on the event loop);
 * - PostgreSQL: `sw` on userName / externalId is `LIKE 'prefix%'`, which a btree only serves under
 *   the C collation or with text_pattern_ops. MariaDB already ranges over the unique indexes, and
 *   SQLite gets a range condition next to its LIKE (scim/filter-sql.ts).
 */
export class ScimListIndexes1764600000000 implements MigrationInterface {
  name = 'ScimListIndexes1764600000000';

  async up(q: QueryRunner): Promise<void> {
    // Partial where the engine has them: an index that starts with deleted_at tempts SQLite's
    // planner (without ANALYZE statistics) to scan every live user even for a `sw` lookup.
    const partial = q.connection.options.type !== 'mysql' && q.connection.options.type !== 'mariadb';
    await q.createIndex(
      'users',
      partial
        ? // deleted_at last, only so that the count and the ids of a page read the index alone
          new TableIndex({ name: 'ix_users_live_order', columnNames: ['created_at', 'id', 'deleted_at'], where: 'deleted_at IS NULL' })
        : new TableIndex({ name: 'ix_users_live_order', columnNames: ['deleted_at', 'created_at', 'id'] }),
    );
    if (q.connection.options.type === 'postgres') {
      await q.query('CREATE INDEX ix_users_user_name_norm_prefix ON users (user_name_norm text_pattern_ops)');
      await q.query('CREATE INDEX ix_users_external_id_prefix ON users (external_id text_pattern_ops)');
    }
  }

  async down(q: QueryRunner): Promise<void> {
    if (q.connection.options.type === 'postgres') {
      await q.query('DROP INDEX ix_users_external_id_prefix');
      await q.query('DROP INDEX ix_users_user_name_norm_prefix');
    }
    await q.dropIndex('users', 'ix_users_live_order');
  }
}
