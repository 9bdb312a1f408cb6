import { randomBytes } from 'node:crypto';
import { createTestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import { VaultEmulator } from '../emulators/vault';
import { AwsKmsEmulator, REGION } from '../emulators/aws-kms';
import { useFakeAwsCredentials } from '../emulators/credentials';
import { AwsKmsAdapter } from '../../kms-adapters/aws-kms';
import { VaultTransitAdapter } from '../../kms-adapters/vault-transit';
import { KmsConfigurationError } from '../../server/errors';
import { rewrapEnvelopes } from '../../server/keks/rewrap';
import { binding } from '../../server/keys/binding';
import { seedPasswordKeys } from './support';

/**
 * Native re-encryption where the provider cannot do it for the two keys: the adapter refuses with
 * KmsConfigurationError (Vault: another key; AWS: an RSA key, whose binding is sealed inside the
 * plaintext), and the rewrap falls back to unwrap + wrap after one attempt per key pair.
 */
const ctx = { purpose: 'password-key', user: 'u-1' };

test('adapters refuse native rewrap they cannot do (Vault before any request)', async () => {
  const vault = await new VaultEmulator().start();
  useFakeAwsCredentials(REGION);
  const aws = await new AwsKmsEmulator().start();
  try {
    vault.addKey('a');
    vault.addKey('b');
    const v = new VaultTransitAdapter({ scheme: 'http', token: 'root-test-token' });
    const w = await v.wrap(`vault-transit://${vault.hostPort}/transit/keys/a`, randomBytes(32), ctx);
    const before = vault.faults.requests;
    await expect(v.rewrap(`vault-transit://${vault.hostPort}/transit/keys/a`, w.ciphertext, ctx, `vault-transit://${vault.hostPort}/transit/keys/b`)).rejects.toBeInstanceOf(KmsConfigurationError);
    expect(vault.faults.requests).toBe(before);
    await v.close();

    const a = new AwsKmsAdapter({ endpoint: aws.endpoint, region: REGION });
    const sym = aws.addKey();
    const rsa = aws.addKey('RSA_2048');
    const s = await a.wrap(`aws-kms://${sym.arn}`, randomBytes(32), ctx);
    await expect(a.rewrap(`aws-kms://${sym.arn}`, s.ciphertext, ctx, `aws-kms://${rsa.arn}`)).rejects.toBeInstanceOf(KmsConfigurationError);
    await a.close();
  } finally {
    await vault.close();
    await aws.close();
  }
});

describe.each(testDatabaseNames())('on %s', (db) => {
  test('Vault key → another Vault key: one rewrap attempt, then unwrap + wrap; every envelope moves and opens', async () => {
    const vault = await new VaultEmulator().start();
    vault.addKey('a');
    vault.addKey('b');
    const from = `vault-transit://${vault.hostPort}/transit/keys/a`;
    const to = `vault-transit://${vault.hostPort}/transit/keys/b`;
    const c = await createTestContext(db, { CS_KEK_URI: from, CS_PREVIOUS_KEK_URIS: to, CS_VAULT_TOKEN: 'root-test-token', CS_VAULT_SCHEME: 'http' });
    const adapter = c.kms.forUri(from);
    const rewrap = adapter.rewrap!;
    let attempts = 0;
    adapter.rewrap = (...args) => (attempts++, rewrap.apply(adapter, args));
    try {
      const u = await c.keys.provisionUser({ userName: 'lee@example.com' }, { actor: 'test' });
      const seeded = await seedPasswordKeys(c.store, c.kms, from, 30, { publicJwk: JSON.stringify(u.keys.publicJwk), privateJwe: u.keys.privateJwe });
      const s = await rewrapEnvelopes(c.store, c.kms, { to, configuredKeks: [from, to] });
      expect(s.tables.find((t) => t.table === 'user_keys')).toMatchObject({ moved: 31, native: 0, failed: [] });
      expect(attempts).toBeGreaterThanOrEqual(1);
      expect(attempts).toBeLessThanOrEqual(8); // the first batch's workers at most, then never again
      for (const [id, pk] of [...seeded].slice(0, 5)) {
        const row = (await c.store.repos.users.findKeys(id))!;
        expect(row.kekUri).toBe(to);
        expect((await c.kms.unwrapStored(row.wrappedPasswordKey, binding.passwordKey(id))).equals(pk)).toBe(true);
      }
    } finally {
      adapter.rewrap = rewrap;
      await c.cleanup();
      await vault.close();
    }
  });
});
