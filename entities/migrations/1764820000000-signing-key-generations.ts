import { TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Token-signing keys get a generation number, unique: the database picks one winner when several
 * replicas create the first key, or the next one, at the same moment (server/auth/signing-keys.ts).
 * Before, PostgreSQL kept every racer's key active and MariaDB refused all but one racer with a
 * deadlock (a failed sign-in). Existing keys are numbered in the order they were created; keys a
 * replica of the previous release inserts during a rolling upgrade have none (NULL is not unique).
 */
export class SigningKeyGenerations1764820000000 implements MigrationInterface {
  name = 'SigningKeyGenerations1764820000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('signing_keys', new TableColumn({ name: 'generation', type: 'integer', isNullable: true }));
    const rows: { kid: string }[] = await q.query('SELECT kid FROM signing_keys ORDER BY created_at, kid');
    const p = q.connection.options.type === 'postgres' ? ['$1', '$2'] : ['?', '?'];
    for (const [i, r] of rows.entries()) await q.query(`UPDATE signing_keys SET generation = ${p[0]} WHERE kid = ${p[1]}`, [i + 1, r.kid]);
    await q.createIndex('signing_keys', new TableIndex({ name: 'uq_signing_keys_generation', columnNames: ['generation'], isUnique: true }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropIndex('signing_keys', 'uq_signing_keys_generation');
    await q.dropColumn('signing_keys', 'generation');
  }
}
