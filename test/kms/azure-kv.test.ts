import { randomBytes } from 'node:crypto';
import { runKmsContract } from './contract';
import { AzureKvEmulator } from '../emulators/azure-kv';
import { makeTestPki, type TestPki } from '../emulators/tls';
import { AzureKeyVaultAdapter, sdkClient } from '../../kms-adapters/azure-kv';
import { azureStaticCredential } from '../emulators/credentials';
import { denyNonLoopback } from '../emulators/offline';
import { KmsConfigurationError, KmsUnavailableError, UnwrapRefusedError } from '../../server/errors';

const fast = { baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 3000 };
const ctx = { purpose: 'password-key', user: 'alice' };
denyNonLoopback();
const VAULT = 'acme-keys.vault.azure.net';
const HSM = 'acme-hsm.managedhsm.azure.net';

/** Every vault host is served by the one local emulator, over TLS trusted via the test CA. */
function adapterFor(emu: AzureKvEmulator, pki: TestPki, extra: Record<string, unknown> = {}, token?: string) {
  return new AzureKeyVaultAdapter({ ...fast, ...extra }, () =>
    sdkClient(emu.url, azureStaticCredential(token), { tlsOptions: { ca: pki.ca }, disableChallengeResourceVerification: true }),
  );
}

describe('azure-kv', () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = makeTestPki();
  });
  afterAll(() => pki.cleanup());

  runKmsContract('azure-kv (Key Vault RSA-OAEP-256, sealed digest)', async () => {
    const emu = await new AzureKvEmulator(pki).start();
    emu.addKey('kek-a', 'RSA');
    emu.addKey('kek-b', 'RSA');
    return { adapter: adapterFor(emu, pki, { createKeysIn: VAULT }), keyUri: `azure-kv://${VAULT}/keys/kek-a`, otherKeyUri: `azure-kv://${VAULT}/keys/kek-b`, teardown: () => emu.close() };
  });

  runKmsContract('azure-kv (Managed HSM oct-HSM, A256GCM with AAD)', async () => {
    const emu = await new AzureKvEmulator(pki).start();
    emu.addKey('hsm-a', 'oct-HSM');
    emu.addKey('hsm-b', 'oct-HSM');
    return { adapter: adapterFor(emu, pki, { createKeysIn: HSM }), keyUri: `azure-kv://${HSM}/keys/hsm-a`, otherKeyUri: `azure-kv://${HSM}/keys/hsm-b`, teardown: () => emu.close() };
  });

  describe('adapter against the emulator', () => {
    let emu: AzureKvEmulator;
    let adapter: AzureKeyVaultAdapter;
    let n = 0;
    beforeAll(async () => {
      emu = await new AzureKvEmulator(pki).start();
    });
    beforeEach(() => {
      emu.faults.reset();
      adapter = adapterFor(emu, pki, { breakerThreshold: 3, breakerCooldownMs: 60_000 });
    });
    afterEach(() => adapter.close());
    afterAll(() => emu.close());
    const fresh = (kty: 'RSA' | 'oct-HSM' = 'RSA') => {
      const name = `k${++n}`;
      const key = emu.addKey(name, kty);
      return { name, key, uri: `azure-kv://${kty === 'RSA' ? VAULT : HSM}/keys/${name}` };
    };

    test('goes through the 401 bearer challenge, then uses the token', async () => {
      const { uri } = fresh();
      const before = emu.challenges;
      const w = await adapter.wrap(uri, Buffer.from('k'), ctx);
      expect(emu.challenges).toBeGreaterThan(before);
      expect((await adapter.unwrap(uri, w.ciphertext, ctx)).toString()).toBe('k');
    });

    test.each(['RSA', 'oct-HSM'] as const)('%s: keyVersion is the kid version; old versions open after rotation', async (kty) => {
      const { name, key, uri } = fresh(kty);
      const pt = randomBytes(32);
      const v1 = await adapter.wrap(uri, pt, ctx);
      expect(v1.keyVersion).toBe(key.versions[0].id);
      const v2id = emu.rotate(name);
      const later = adapterFor(emu, pki); // a fresh process sees the new latest version
      try {
        const v2 = await later.wrap(uri, pt, ctx);
        expect(v2.keyVersion).toBe(v2id);
        expect((await later.unwrap(uri, v1.ciphertext, ctx)).equals(pt)).toBe(true);
        expect((await later.unwrap(uri, v2.ciphertext, ctx)).equals(pt)).toBe(true);
        // A URI pinned to version 2 refuses a version-1 blob.
        await expect(later.unwrap(`${uri}/${v2id}`, v1.ciphertext, ctx)).rejects.toBeInstanceOf(UnwrapRefusedError);
      } finally {
        await later.close();
      }
    });

    test('AAD mismatch on Managed HSM is refused by the service → UnwrapRefusedError', async () => {
      const { uri } = fresh('oct-HSM');
      const w = await adapter.wrap(uri, randomBytes(32), ctx);
      const e = await adapter.unwrap(uri, w.ciphertext, { ...ctx, user: 'mallory' }).catch((x) => x);
      expect(e).toBeInstanceOf(UnwrapRefusedError);
      expect(e.internalDetail).toMatch(/Decryption failed/);
    });

    test('RSA: a context mismatch is caught by the sealed digest', async () => {
      const { uri } = fresh('RSA');
      const w = await adapter.wrap(uri, randomBytes(32), ctx);
      const e = await adapter.unwrap(uri, w.ciphertext, { ...ctx, user: 'mallory' }).catch((x) => x);
      expect(e).toBeInstanceOf(UnwrapRefusedError);
      expect(e.internalDetail).toMatch(/sealed associated-data digest/);
    });

    test('429 (Retry-After) and 503 are retried, then success', async () => {
      const { uri } = fresh();
      const w = await adapter.wrap(uri, Buffer.from('k'), ctx);
      emu.faults.throttleNext = 1;
      emu.faults.errorNext = 1;
      const before = emu.faults.requests;
      expect((await adapter.unwrap(uri, w.ciphertext, ctx)).toString()).toBe('k');
      expect(emu.faults.requests - before).toBeGreaterThanOrEqual(3);
    });

    test('a dead vault trips the breaker: fast KmsUnavailableError without reaching it', async () => {
      const { uri } = fresh();
      emu.faults.down = true;
      for (let i = 0; i < 3; i++) await expect(adapter.wrap(uri, Buffer.from('k'), ctx)).rejects.toBeInstanceOf(KmsUnavailableError);
      const seen = emu.faults.requests;
      const e = await adapter.wrap(uri, Buffer.from('k'), ctx).catch((x) => x);
      expect(e).toBeInstanceOf(KmsUnavailableError);
      expect(e.retryAfter).toBeGreaterThan(0);
      expect(emu.faults.requests).toBe(seen);
    });

    test('a slow answer past the timeout is retried', async () => {
      const { uri } = fresh('oct-HSM');
      const quick = adapterFor(emu, pki, { timeoutMs: 300, maxRetries: 2 });
      try {
        const w = await quick.wrap(uri, Buffer.from('k'), ctx);
        emu.faults.delayNext = 1;
        emu.faults.delayMs = 1500;
        expect((await quick.unwrap(uri, w.ciphertext, ctx)).toString()).toBe('k');
      } finally {
        await quick.close();
      }
    });

    test('access denied, a disabled key, a missing key and a bad token are configuration errors', async () => {
      const denied = fresh();
      denied.key.denied = true;
      const e1 = await adapter.wrap(denied.uri, Buffer.from('k'), ctx).catch((x) => x);
      expect(e1).toBeInstanceOf(KmsConfigurationError);
      expect(e1.internalDetail).toMatch(/does not have keys/);
      const disabled = fresh('oct-HSM');
      const w = await adapter.wrap(disabled.uri, Buffer.from('k'), ctx);
      disabled.key.versions[0].enabled = false;
      const e2 = await adapter.unwrap(disabled.uri, w.ciphertext, ctx).catch((x) => x);
      expect(e2).toBeInstanceOf(KmsConfigurationError);
      expect(e2.internalDetail).toMatch(/disabled key/);
      await expect(adapter.wrap(`azure-kv://${VAULT}/keys/missing`, Buffer.from('k'), ctx)).rejects.toBeInstanceOf(KmsConfigurationError);
      const bad = adapterFor(emu, pki, {}, 'wrong-token');
      await expect(bad.wrap(fresh().uri, Buffer.from('k'), ctx)).rejects.toBeInstanceOf(KmsConfigurationError);
      await bad.close();
    });
  });
});
