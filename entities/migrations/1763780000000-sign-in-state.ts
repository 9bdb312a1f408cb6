import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';
import { refCol, strCol, textCol, timeCol } from './table-columns';

/** Sign-in state: SAML request IDs, one-time authorization codes, token-signing keys. */
export class SignInState1763780000000 implements MigrationInterface {
  name = 'SignInState1763780000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'saml_requests',
        columns: [
          { ...strCol('id', 128), isPrimary: true }, strCol('issued_at', 32), timeCol('expires_at'), timeCol('consumed_at', true),
          strCol('client_id', 64), textCol('redirect_uri'), strCol('code_challenge', 64), textCol('state', true), timeCol('created_at'),
        ],
        indices: [{ name: 'ix_saml_requests_expires_at', columnNames: ['expires_at'] }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'auth_codes',
        columns: [
          { ...strCol('code_hash', 64), isPrimary: true }, strCol('client_id', 64), textCol('redirect_uri'), strCol('code_challenge', 64),
          refCol('user_id'), timeCol('expires_at'), timeCol('consumed_at', true), timeCol('created_at'),
        ],
        foreignKeys: [{ columnNames: ['user_id'], referencedTableName: 'users', referencedColumnNames: ['id'], onDelete: 'CASCADE' }],
        indices: [{ name: 'ix_auth_codes_expires_at', columnNames: ['expires_at'] }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'signing_keys',
        columns: [
          { ...strCol('kid', 64), isPrimary: true }, strCol('alg', 16), textCol('public_jwk'), textCol('wrapped_private_jwk'),
          strCol('kek_uri', 512), strCol('state', 16), timeCol('created_at'), timeCol('retired_at', true),
        ],
        indices: [{ name: 'ix_signing_keys_state', columnNames: ['state'] }],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of ['signing_keys', 'auth_codes', 'saml_requests']) await q.dropTable(t);
  }
}
