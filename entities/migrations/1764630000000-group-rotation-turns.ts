import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';
import { strCol, timeCol } from './table-columns';

/** Leases that let rotations of one group take turns across worker processes and replicas. */
export class GroupRotationTurns1764630000000 implements MigrationInterface {
  name = 'GroupRotationTurns1764630000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'group_rotation_turns',
        columns: [{ ...strCol('group_id', 36), isPrimary: true }, strCol('holder', 64), timeCol('expires_at')],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('group_rotation_turns');
  }
}
