import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** SCIM: bearer tokens (hashes), delivery outbox, shared rate-limit counters. Portable Table API only. */
export class Scim1763800000000 implements MigrationInterface {
  name = 'Scim1763800000000';

  async up(q: QueryRunner): Promise<void> {
    const ts = (name: string, nullable = false) => ({ name, type: 'varchar', length: '24', isNullable: nullable });
    await q.createTable(
      new Table({
        name: 'api_tokens',
        columns: [
          { name: 'id', type: 'varchar', length: '32', isPrimary: true },
          { name: 'name', type: 'varchar', length: '200' },
          { name: 'scope', type: 'varchar', length: '50' },
          { name: 'secret_hash', type: 'varchar', length: '64' },
          ts('created_at'),
          ts('last_used_at', true),
          ts('expires_at', true),
          ts('revoked_at', true),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'scim_outbox',
        columns: [
          { name: 'seq', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'event_id', type: 'varchar', length: '64' },
          { name: 'resource_type', type: 'varchar', length: '20' },
          { name: 'resource_id', type: 'varchar', length: '36' },
          { name: 'event_type', type: 'varchar', length: '40' },
          { name: 'payload', type: 'text' },
          { name: 'status', type: 'varchar', length: '12' },
          { name: 'attempts', type: 'integer' },
          ts('created_at'),
          ts('next_attempt_at'),
          ts('delivered_at', true),
          { name: 'last_error', type: 'varchar', length: '500', isNullable: true },
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
