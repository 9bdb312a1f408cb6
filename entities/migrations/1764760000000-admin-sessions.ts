import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';
import { strCol, textCol, timeCol } from './table-columns';

/**
 * Console session state that must hold across workers and replicas (admin/session-revocations.ts,
 * admin/token-reveals.ts):
 * - admin_session_revocations: sessions ended by Sign out, by the session's jti, kept until the
 *   session would have expired anyway (then pruned);
 * - admin_token_reveals: a just-created token, wrapped by the KEK and bound to the creating
 *   session, for at most two minutes and deleted when first shown (Post/Redirect/Get).
 */
export class AdminSessions1764760000000 implements MigrationInterface {
  name = 'AdminSessions1764760000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'admin_session_revocations',
        columns: [{ ...strCol('jti', 64), isPrimary: true }, timeCol('expires_at'), timeCol('revoked_at')],
        indices: [new TableIndex({ name: 'ix_admin_session_revocations_expires', columnNames: ['expires_at'] })],
      }),
    );
    await q.createTable(
      new Table({
        name: 'admin_token_reveals',
        columns: [{ ...strCol('id', 64), isPrimary: true }, strCol('session_jti', 64), textCol('envelope'), timeCol('expires_at')],
        indices: [new TableIndex({ name: 'ix_admin_token_reveals_expires', columnNames: ['expires_at'] })],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('admin_token_reveals');
    await q.dropTable('admin_session_revocations');
  }
}
