import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';
import { strCol, timeCol } from './table-columns';

/**
 * Reading and forwarding the audit log (issue 13):
 * - indexes for searches newest first by actor or action (`WHERE actor = ? AND id < ? ORDER BY id
 *   DESC LIMIT n` walks (actor, id) backwards and stops after n rows) and by request id; time
 *   bounds use the existing index on `at`, targets the one on (target_type, target_id);
 * - audit_forward_cursors: per sink, the last forwarded seq and the lease of the process forwarding.
 */
export class AuditReading1764710000000 implements MigrationInterface {
  name = 'AuditReading1764710000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createIndex('audit_events', new TableIndex({ name: 'ix_audit_events_actor_id', columnNames: ['actor', 'id'] }));
    await q.createIndex('audit_events', new TableIndex({ name: 'ix_audit_events_action_id', columnNames: ['action', 'id'] }));
    await q.createIndex('audit_events', new TableIndex({ name: 'ix_audit_events_request', columnNames: ['request_id'] }));
    await q.createTable(
      new Table({
        name: 'audit_forward_cursors',
        columns: [
          { ...strCol('sink', 255), isPrimary: true },
          { name: 'last_seq', type: 'bigint' },
          strCol('holder', 64, true),
          timeCol('lease_expires_at', true),
          timeCol('updated_at'),
          strCol('last_error', 255, true),
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('audit_forward_cursors');
    await q.dropIndex('audit_events', 'ix_audit_events_request');
    await q.dropIndex('audit_events', 'ix_audit_events_action_id');
    await q.dropIndex('audit_events', 'ix_audit_events_actor_id');
  }
}
