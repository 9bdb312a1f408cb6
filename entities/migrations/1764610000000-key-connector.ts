import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';
import { strCol, textCol, timeCol } from './table-columns';

/** User keys of the Key Connector API (docs/key-connector.md), one row per identity-server user. */
export class KeyConnector1764610000000 implements MigrationInterface {
  name = 'KeyConnector1764610000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'key_connector_user_keys',
        columns: [{ ...strCol('sub', 36), isPrimary: true }, textCol('wrapped_key'), strCol('kek_uri', 512), timeCol('created_at'), timeCol('revised_at', true), timeCol('last_access_at', true)],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('key_connector_user_keys');
  }
}
