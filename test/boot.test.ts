import pino from 'pino';
import { loadConfig } from '../server/config';
import { boot, openStore } from '../server/boot';
import { ConfigError } from '../server/errors';
import { createSqlite, type TestDatabase } from './support/databases';

/** Start-up refuses a wrong KMS setting before it touches the database. */
describe('boot checks the KMS configuration first', () => {
  let db: TestDatabase;
  beforeEach(async () => {
    db = await createSqlite();
  });
  afterEach(async () => db.drop());

  const attempt = (env: Record<string, string>) =>
    boot(loadConfig({ CS_DATABASE_URL: db.url, CS_LOCAL_MASTER_KEY: Buffer.alloc(32, 9).toString('base64'), CS_LOG_LEVEL: 'silent', ...env }), pino({ level: 'silent' }), { migrate: true });

  const pendingAfter = async () => {
    const store = await openStore(loadConfig({ CS_DATABASE_URL: db.url }));
    try {
      return await store.hasPendingMigrations();
    } finally {
      await store.close();
    }
  };

  test.each([
    [{ CS_KEK_URI: 'locl://default' }, /^CS_KEK_URI: "locl:\/\/default" has no adapter; key URIs start with local:, pkcs11:/],
    [{ CS_KEK_URI: 'aws-kms://not-an-arn' }, /^CS_KEK_URI: .*not an AWS KMS key URI/],
    [{ CS_KEK_URI: 'local://a/b' }, /^CS_KEK_URI: .*local:\/\/NAME/],
    [{ CS_PREVIOUS_KEK_URIS: 'local://ok,gcp-kms://projects/p' }, /^CS_PREVIOUS_KEK_URIS: /],
    [{ CS_KEK_MODE: 'per-user', CS_KEK_URI: 'gcp-kms://projects/p/locations/global/keyRings/r/cryptoKeys/k' }, /^CS_KEK_MODE=per-user: the gcp-kms adapter cannot create keys .*CS_GCP_KMS_KEY_RING/],
  ])('%j stops start-up with the setting named, and nothing is migrated', async (env, message) => {
    const err = await attempt(env).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
    expect(await pendingAfter()).toBe(true);
  });

  test('a valid configuration boots and migrates', async () => {
    const deps = await attempt({ CS_KEK_URI: 'local://main', CS_KEK_MODE: 'per-user' });
    await deps.close();
    expect(await pendingAfter()).toBe(false);
  });
});
