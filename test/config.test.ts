import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../server/config';
import { ConfigError } from '../server/errors';
import { describeDatabase } from '../server/config/core';

describe('configuration', () => {
  test('embedded defaults: SQLite under ./data, local KEK created on first start, localhost', () => {
    const c = loadConfig({});
    expect(c.server).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(c.database).toMatchObject({ type: 'sqlite', embedded: true, migrateOnStart: true });
    expect(c.kms.kekUri).toBe('local://default');
    expect(c.kms.adapters.local).toMatchObject({ createMasterKey: true, masterKeyFile: join('data', 'master.key') });
    expect(c.keys.userKeyAlgorithm).toBe('ec-p256');
  });

  test('an external database turns off embedded conveniences (no auto-migrate, no key creation)', () => {
    const c = loadConfig({ CS_DATABASE_URL: 'postgres://db.internal/cs' });
    expect(c.database).toMatchObject({ type: 'postgres', embedded: false, migrateOnStart: false });
    expect(c.kms.adapters.local.createMasterKey).toBe(false);
    expect(loadConfig({ CS_DATABASE_URL: 'mariadb://db/cs' }).database).toMatchObject({ type: 'mysql', url: 'mysql://db/cs' });
  });

  test('the public URL defaults to where the server listens (SP metadata, ACS and token issuer follow it)', () => {
    expect(loadConfig({ CS_PORT: '18300' }).auth.publicUrl).toBe('http://127.0.0.1:18300');
    expect(loadConfig({ CS_PUBLIC_URL: 'https://keys.example.com/' }).auth.publicUrl).toBe('https://keys.example.com');
  });

  test('messages name the database without its credentials', () => {
    expect(describeDatabase(loadConfig({ CS_DATABASE_URL: 'postgres://cs:s3cret@db.internal:5432/crypto' }).database)).toBe('postgres db.internal:5432/crypto');
    expect(describeDatabase(loadConfig({ CS_DATA_DIR: '/var/lib/cs' }).database)).toBe('sqlite /var/lib/cs/crypto-server.db');
  });

  test('the result is frozen', () => {
    const c = loadConfig({});
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.kms.adapters.local)).toBe(true);
    expect(() => {
      (c.server as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  test.each([
    [{ CS_PORT: 'eighty' }, /CS_PORT/],
    [{ CS_PORT: '70000' }, /CS_PORT/],
    [{ CS_KEK_MODE: 'sometimes' }, /CS_KEK_MODE/],
    [{ CS_USER_KEY_ALGORITHM: 'rsa-1024' }, /CS_USER_KEY_ALGORITHM/],
    [{ CS_DATABASE_URL: 'oracle://x' }, /CS_DATABASE_URL: invalid value \(not shown\); must start with sqlite:, postgres:\/\/, mysql:\/\/ or mariadb:\/\//],
    [{ CS_KEK_URI: 'not a uri' }, /CS_KEK_URI: must be a key URI/],
  ])('an invalid setting stops start-up with a message naming it: %j', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  test('a bad secret is named but its value is never echoed', () => {
    const secret = 'hunter2-not-base64-at-all';
    let msg = '';
    try {
      loadConfig({ CS_LOCAL_MASTER_KEY: secret, CS_PORT: 'x' });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain('CS_LOCAL_MASTER_KEY: invalid value (not shown); must be 32 random bytes, base64-encoded');
    expect(msg).toContain('CS_PORT');
    expect(msg).not.toContain(secret);
  });

  test('cloud KMS and Vault settings reach their adapters; Vault secrets are never echoed', () => {
    const c = loadConfig({ CS_VAULT_TOKEN: 's.secret', CS_VAULT_NAMESPACE: 'team-a', CS_KMS_TIMEOUT_MS: '2500', CS_AWS_KMS_ENDPOINT: 'https://kms.internal:4443' });
    expect(c.kms.adapters['vault-transit']).toMatchObject({ token: 's.secret', namespace: 'team-a', timeoutMs: 2500 });
    expect(c.kms.adapters['aws-kms']).toMatchObject({ endpoint: 'https://kms.internal:4443', timeoutMs: 2500 });
    expect(() => loadConfig({ CS_VAULT_SCHEME: 'ftp', CS_VAULT_SECRET_ID: '' })).toThrow(/CS_VAULT_SCHEME/);
    expect(() => loadConfig({ CS_KMS_TIMEOUT_MS: '-1' })).toThrow(/CS_KMS_TIMEOUT_MS/);
    expect(() => loadConfig({ CS_GCP_KMS_KEY_RING: 'ring' })).toThrow(/CS_GCP_KMS_KEY_RING: must be projects\/P/);
  });

  test('a misspelt or unknown CS_* setting stops start-up instead of being ignored', () => {
    expect(() => loadConfig({ CS_KEK_URL: 'aws-kms://x' })).toThrow(/CS_KEK_URL: not a known setting; did you mean CS_KEK_URI\?/);
    expect(() => loadConfig({ CS_SOMETHING_ELSE: '1' })).toThrow(/CS_SOMETHING_ELSE: not a known setting \(see docs/);
    expect(() => loadConfig({ CS_TEST_PG_URL: 'postgres://x', PATH: '/bin' })).not.toThrow();
  });

  test('empty variables count as unset', () => {
    expect(loadConfig({ CS_PORT: '' }).server.port).toBe(8080);
  });

  describe('CS_CONFIG_FILE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cs-cfg-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    test('a JSON file provides settings and the environment overrides it', () => {
      const f = join(dir, 'c.json');
      writeFileSync(f, JSON.stringify({ CS_PORT: 9000, CS_KEK_MODE: 'per-user' }));
      const c = loadConfig({ CS_CONFIG_FILE: f, CS_PORT: '9100' });
      expect(c.server.port).toBe(9100);
      expect(c.kms.kekMode).toBe('per-user');
    });

    test('CS_DATABASE_URL_FILE keeps the database password out of the environment', () => {
      const f = join(dir, 'db-url');
      writeFileSync(f, 'postgres://cs:s3cret@db:5432/crypto\n', { mode: 0o600 });
      expect(loadConfig({ CS_DATABASE_URL_FILE: f }).database).toMatchObject({ type: 'postgres', url: 'postgres://cs:s3cret@db:5432/crypto' });
      expect(() => loadConfig({ CS_DATABASE_URL_FILE: f, CS_DATABASE_URL: 'sqlite:x' })).toThrow(/both set/);
      expect(() => loadConfig({ CS_DATABASE_URL_FILE: join(dir, 'nope') })).toThrow(/CS_DATABASE_URL_FILE: cannot read .* \(ENOENT\)/);
      writeFileSync(f, 'oracle://cs:s3cret@db/x');
      let msg = '';
      try {
        loadConfig({ CS_DATABASE_URL_FILE: f });
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toMatch(/CS_DATABASE_URL: invalid value \(not shown\)/);
      expect(msg).not.toContain('s3cret');
    });

    test('unreadable or foreign content is refused with the setting named', () => {
      const bad = join(dir, 'bad.json');
      writeFileSync(bad, '{nope');
      expect(() => loadConfig({ CS_CONFIG_FILE: bad })).toThrow(/CS_CONFIG_FILE: cannot read/);
      const foreign = join(dir, 'foreign.json');
      writeFileSync(foreign, JSON.stringify({ PORT: 1 }));
      expect(() => loadConfig({ CS_CONFIG_FILE: foreign })).toThrow(/"PORT", which is not a CS_\* setting/);
      expect(() => loadConfig({ CS_CONFIG_FILE: join(dir, 'missing.json') })).toThrow(/CS_CONFIG_FILE/);
    });
  });
});
