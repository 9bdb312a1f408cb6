import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';
import { strCol, textCol, timeCol } from './table-columns';

/** SCIM: bearer tokens (hashes), delivery outbox, shared rate-limit counters. Portable Table API only. */
export class Scim1763800000000 implements MigrationInterface {
  name = 'Scim1763800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'api_tokens',
        columns: [
          { name: 'id', type: 'varchar', length: '32', isPrimary: true },
          strCol('name', 200),
          strCol('scope', 50),
          strCol('secret_hash', 64),
          timeCol('created_at'),
          timeCol('last_used_at', true),
          timeCol('expires_at', true),
          timeCol('revoked_at', true),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'scim_outbox',
        columns: [
          { name: 'seq', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          strCol('event_id', 64),
          strCol('resource_type', 20),
          strCol('resource_id', 36),
          strCol('event_type', 40),
          textCol('payload'),
          strCol('status', 12),
          { name: 'attempts', type: 'integer' },
          timeCol('created_at'),
          timeCol('next_attempt_at'),
          timeCol('delivered_at', true),
          strCol('last_error', 500, true),
        ],
      }),
    );
    await q.createIndex('scim_outbox', new TableIndex({ name: 'idx_scim_outbox_status_due', columnNames: ['status', 'next_attempt_at'] }));
    await q.createIndex('scim_outbox', new TableIndex({ name: 'idx_scim_outbox_resource', columnNames: ['resource_id', 'status', 'seq'] }));
    await q.createIndex('scim_outbox', new TableIndex({ name: 'uq_scim_outbox_event', columnNames: ['event_id'], isUnique: true }));
    await q.createTable(
      new Table({
        name: 'rate_limit_counters',
        columns: [
          { name: 'bucket', type: 'varchar', length: '100', isPrimary: true },
          { name: 'window_start', type: 'integer', isPrimary: true },
          { name: 'hits', type: 'integer' },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('rate_limit_counters');
    await q.dropTable('scim_outbox');
    await q.dropTable('api_tokens');
  }
}
