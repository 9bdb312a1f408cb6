import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';
import { intCol, strCol, timeCol } from './table-columns';

/**
 * server_instances: one heartbeat row per serving process (each CS_WORKERS worker of each
 * replica), so the console and `crypto-server instances` can say which processes are alive and
 * which versions they run (server/instances/). Rows are removed on graceful shutdown and pruned
 * 24 h after they were last seen.
 */
export class ServerInstances1764770000000 implements MigrationInterface {
  name = 'ServerInstances1764770000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'server_instances',
        columns: [
          { ...strCol('id', 36), isPrimary: true },
          strCol('hostname', 255),
          intCol('pid'),
          { ...intCol('worker'), isNullable: true },
          strCol('version', 64),
          timeCol('started_at'),
          timeCol('seen_at'),
        ],
        indices: [new TableIndex({ name: 'ix_server_instances_seen', columnNames: ['seen_at'] })],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('server_instances');
  }
}
