import { Table, TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';
import { intCol, refCol, strCol, textCol, timeCol } from './table-columns';

const cascade = (column: string, table: string) => ({ columnNames: [column], referencedTableName: table, referencedColumnNames: ['id'], onDelete: 'CASCADE' });

/**
 * Group key versions (rekey on member removal). Every existing group becomes version 1 with the
 * keys and member JWEs it already has; `group_keys` keeps mirroring the current version.
 */
export class GroupKeyVersions1764000000000 implements MigrationInterface {
  name = 'GroupKeyVersions1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('group_keys', new TableColumn({ ...intCol('key_version'), default: 1 }));
    await q.createTable(
      new Table({
        name: 'group_key_versions',
        columns: [
          refCol('group_id', false, true), { ...intCol('version'), isPrimary: true }, strCol('key_alg', 32), textCol('public_jwk'),
          textCol('private_jwe'), textCol('wrapped_membership_key'), strCol('kek_uri', 512), timeCol('created_at'),
        ],
        foreignKeys: [cascade('group_id', 'groups')],
      }),
    );
    await q.createTable(
      new Table({
        name: 'group_member_keys',
        columns: [refCol('group_id', false, true), refCol('user_id', false, true), { ...intCol('version'), isPrimary: true }, textCol('member_jwe'), timeCol('created_at')],
        foreignKeys: [cascade('group_id', 'groups'), cascade('user_id', 'users')],
        indices: [{ name: 'ix_group_member_keys_user', columnNames: ['user_id'] }],
      }),
    );
    await q.query(
      'INSERT INTO group_key_versions (group_id, version, key_alg, public_jwk, private_jwe, wrapped_membership_key, kek_uri, created_at) ' +
        'SELECT group_id, 1, key_alg, public_jwk, private_jwe, wrapped_membership_key, kek_uri, created_at FROM group_keys',
    );
    await q.query('INSERT INTO group_member_keys (group_id, user_id, version, member_jwe, created_at) SELECT group_id, user_id, 1, member_jwe, created_at FROM group_members');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('group_member_keys');
    await q.dropTable('group_key_versions');
    await q.dropColumn('group_keys', 'key_version');
  }
}
