import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';
import { flagCol, idCol, intCol, refCol, strCol, textCol, timeCol } from './table-columns';

const cascade = (column: string, table: string) => ({
  columnNames: [column],
  referencedTableName: table,
  referencedColumnNames: ['id'],
  onDelete: 'CASCADE',
});

export class InitialSchema1763770000000 implements MigrationInterface {
  name = 'InitialSchema1763770000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'users',
        columns: [
          idCol('id'), strCol('user_name'), strCol('user_name_norm'), strCol('external_id', 255, true),
          strCol('display_name', 255, true), strCol('email', 320, true), strCol('given_name', 255, true),
          strCol('family_name', 255, true), flagCol('active'), textCol('scim_attributes'),
          timeCol('created_at'), timeCol('updated_at'), timeCol('deleted_at', true), intCol('version'),
        ],
        uniques: [
          { name: 'uq_users_user_name_norm', columnNames: ['user_name_norm'] },
          { name: 'uq_users_external_id', columnNames: ['external_id'] },
        ],
        indices: [
          { name: 'ix_users_email', columnNames: ['email'] },
          { name: 'ix_users_updated_at', columnNames: ['updated_at'] },
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'user_keys',
        columns: [
          refCol('user_id', false, true), strCol('key_alg', 32), textCol('public_jwk'), textCol('private_jwe'),
          textCol('wrapped_password_key'), strCol('kek_uri', 512), timeCol('created_at'),
        ],
        foreignKeys: [cascade('user_id', 'users')],
      }),
    );
    await q.createTable(
      new Table({
        name: 'groups',
        columns: [
          idCol('id'), strCol('display_name'), strCol('display_name_norm'), strCol('external_id', 255, true),
          textCol('scim_attributes'), timeCol('created_at'), timeCol('updated_at'), intCol('version'),
        ],
        uniques: [
          { name: 'uq_groups_display_name_norm', columnNames: ['display_name_norm'] },
          { name: 'uq_groups_external_id', columnNames: ['external_id'] },
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'group_keys',
        columns: [
          refCol('group_id', false, true), strCol('key_alg', 32), textCol('public_jwk'), textCol('private_jwe'),
          textCol('wrapped_membership_key'), strCol('kek_uri', 512), timeCol('created_at'),
        ],
        foreignKeys: [cascade('group_id', 'groups')],
      }),
    );
    await q.createTable(
      new Table({
        name: 'group_members',
        columns: [refCol('group_id', false, true), refCol('user_id', false, true), textCol('member_jwe'), timeCol('created_at')],
        foreignKeys: [cascade('group_id', 'groups'), cascade('user_id', 'users')],
        indices: [{ name: 'ix_group_members_user', columnNames: ['user_id'] }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'keks',
        columns: [
          { ...strCol('uri', 512), isPrimary: true }, strCol('scheme', 32), strCol('owner_type', 16, true),
          refCol('owner_id', true), strCol('state', 16), timeCol('created_at'),
        ],
        indices: [{ name: 'ix_keks_state', columnNames: ['state'] }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'audit_events',
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          timeCol('at'), strCol('request_id', 64, true), strCol('actor'), strCol('action', 64),
          strCol('target_type', 32, true), strCol('target_id', 255, true), strCol('kek_uri', 512, true),
          strCol('outcome', 16), textCol('detail', true),
        ],
        indices: [
          { name: 'ix_audit_events_at', columnNames: ['at'] },
          { name: 'ix_audit_events_target', columnNames: ['target_type', 'target_id'] },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of ['audit_events', 'keks', 'group_members', 'group_keys', 'groups', 'user_keys', 'users']) await q.dropTable(t);
  }
}
