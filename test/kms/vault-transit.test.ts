import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runKmsContract } from './contract';
import { VaultEmulator } from '../emulators/vault';
import { makeTestPki, type TestPki } from '../emulators/tls';
import { VaultTransitAdapter } from '../../kms-adapters/vault-transit';
import { denyNonLoopback } from '../emulators/offline';
import { buildRegistry } from '../../kms-adapters/registry';
import { ConfigError, KmsConfigurationError, KmsUnavailableError, UnwrapRefusedError } from '../../server/errors';

denyNonLoopback();
const fast = { baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 2000 };
const ctx = { purpose: 'password-key', user: 'alice' };

// aes256-gcm96 over plain HTTP with a static token: associated_data binding.
runKmsContract('vault-transit (aes256-gcm96, associated_data)', async () => {
  const emu = await new VaultEmulator().start();
  emu.addKey('kek-a');
  emu.addKey('kek-b');
  return {
    adapter: new VaultTransitAdapter({ scheme: 'http', token: 'root-test-token', createKeysAt: `vault-transit://${emu.hostPort}/transit`, ...fast }),
    keyUri: `vault-transit://${emu.hostPort}/transit/keys/kek-a`,
    otherKeyUri: `vault-transit://${emu.hostPort}/transit/keys/kek-b`,
    teardown: () => emu.close(),
  };
});

// rsa-2048 over HTTPS with a custom CA, AppRole login and a namespace: sealed-digest binding.
runKmsContract('vault-transit (rsa-2048 sealed digest, TLS custom CA, AppRole, namespace)', async () => {
  const pki = makeTestPki();
  const emu = await new VaultEmulator(pki).start();
  emu.namespace = 'team-a';
  emu.addKey('rsa-a', 'rsa-2048');
  emu.addKey('rsa-b', 'rsa-2048');
  return {
    adapter: new VaultTransitAdapter({ caFile: pki.caFile, roleId: 'role-1', secretId: 'secret-1', namespace: 'team-a', ...fast }),
    keyUri: `vault-transit://${emu.hostPort}/transit/keys/rsa-a`,
    otherKeyUri: `vault-transit://${emu.hostPort}/transit/keys/rsa-b`,
    teardown: async () => {
      await emu.close();
      pki.cleanup();
    },
  };
});

describe('vault-transit adapter against the emulator', () => {
  let emu: VaultEmulator;
  let adapter: VaultTransitAdapter;
  let pki: TestPki;
  let n = 0;
  beforeAll(async () => {
    pki = makeTestPki();
    emu = await new VaultEmulator(pki).start();
  });
  beforeEach(() => {
    emu.faults.reset();
    adapter = new VaultTransitAdapter({ caFile: pki.caFile, token: 'root-test-token', breakerThreshold: 3, breakerCooldownMs: 60_000, ...fast });
  });
  afterEach(() => adapter.close());
  afterAll(async () => {
    await emu.close();
    pki.cleanup();
  });
  const fresh = (type?: 'rsa-2048') => {
    const name = `k${++n}`;
    emu.addKey(name, type);
    return { name, uri: `vault-transit://${emu.hostPort}/transit/keys/${name}` };
  };

  test('keyVersion is the vault:vN version; old versions open after rotation; rewrap moves to latest', async () => {
    const k = fresh();
    const pt = randomBytes(32);
    const v1 = await adapter.wrap(k.uri, pt, ctx);
    expect(v1.keyVersion).toBe('1');
    emu.rotate(k.name);
    const v2 = await adapter.wrap(k.uri, pt, ctx);
    expect(v2.keyVersion).toBe('2');
    expect((await adapter.unwrap(k.uri, v1.ciphertext, ctx)).equals(pt)).toBe(true);
    const r = await adapter.rewrap(k.uri, v1.ciphertext, ctx);
    expect(r.keyVersion).toBe('2');
    expect((await adapter.unwrap(k.uri, r.ciphertext, ctx)).equals(pt)).toBe(true);
    await expect(adapter.rewrap(k.uri, v1.ciphertext, { purpose: 'other' })).rejects.toBeInstanceOf(UnwrapRefusedError);
    // Retiring v1 (min_decryption_version) is an operator decision: configuration error, not refusal.
    emu.keys.get(k.name)!.minDecryptionVersion = 2;
    const e = await adapter.unwrap(k.uri, v1.ciphertext, ctx).catch((x) => x);
    expect(e).toBeInstanceOf(KmsConfigurationError);
    expect(e.internalDetail).toMatch(/disallowed by policy/);
  });

  test('associated_data mismatch is refused by Vault → UnwrapRefusedError', async () => {
    const k = fresh();
    const w = await adapter.wrap(k.uri, randomBytes(32), ctx);
    const e = await adapter.unwrap(k.uri, w.ciphertext, { ...ctx, user: 'mallory' }).catch((x) => x);
    expect(e).toBeInstanceOf(UnwrapRefusedError);
    expect(e.internalDetail).toMatch(/message authentication failed/);
  });

  test('429 and 503 (sealed) are retried; then success', async () => {
    const k = fresh();
    const w = await adapter.wrap(k.uri, Buffer.from('k'), ctx);
    emu.faults.throttleNext = 1;
    emu.faults.errorNext = 1;
    const before = emu.faults.requests;
    expect((await adapter.unwrap(k.uri, w.ciphertext, ctx)).toString()).toBe('k');
    expect(emu.faults.requests - before).toBe(3);
  });

  test('a Vault that stays sealed trips the breaker; calls then fail fast without reaching it', async () => {
    const k = fresh();
    await adapter.wrap(k.uri, Buffer.from('k'), ctx);
    emu.faults.down = true;
    for (let i = 0; i < 3; i++) await expect(adapter.wrap(k.uri, Buffer.from('k'), ctx)).rejects.toBeInstanceOf(KmsUnavailableError);
    const seen = emu.faults.requests;
    const e = await adapter.wrap(k.uri, Buffer.from('k'), ctx).catch((x) => x);
    expect(e).toBeInstanceOf(KmsUnavailableError);
    expect(e.retryAfter).toBeGreaterThan(0);
    expect(emu.faults.requests).toBe(seen);
  });

  test('a stalled Vault times out per attempt and is retried', async () => {
    const k = fresh();
    const w = await adapter.wrap(k.uri, Buffer.from('k'), ctx);
    const quick = new VaultTransitAdapter({ caFile: pki.caFile, token: 'root-test-token', ...fast, timeoutMs: 200, maxRetries: 1 });
    try {
      emu.faults.delayNext = 2;
      emu.faults.delayMs = 1000;
      await quick.unwrap(k.uri, w.ciphertext, ctx).catch(() => undefined); // describe + decrypt attempts stall
      emu.faults.reset();
      emu.faults.delayNext = 1;
      emu.faults.delayMs = 1000;
      expect((await quick.unwrap(k.uri, w.ciphertext, ctx)).toString()).toBe('k');
    } finally {
      await quick.close();
    }
  });

  test('permission denied, a missing key and a bad token are configuration errors', async () => {
    const k = fresh();
    emu.keys.get(k.name)!.denied = true;
    const e1 = await adapter.wrap(k.uri, Buffer.from('k'), ctx).catch((x) => x);
    expect(e1).toBeInstanceOf(KmsConfigurationError);
    expect(e1.internalDetail).toMatch(/403.*permission denied/);
    const missing = `vault-transit://${emu.hostPort}/transit/keys/no-such-key`;
    const e2 = await adapter.wrap(missing, Buffer.from('k'), ctx).catch((x) => x);
    expect(e2).toBeInstanceOf(KmsConfigurationError);
    expect(emu.keys.has('no-such-key')).toBe(false); // no silent upsert
    const bad = new VaultTransitAdapter({ caFile: pki.caFile, token: 'wrong' });
    await expect(bad.wrap(fresh().uri, Buffer.from('k'), ctx)).rejects.toBeInstanceOf(KmsConfigurationError);
    await bad.close();
  });

  test('Kubernetes auth logs in with the service account JWT and logs in again when the token is revoked', async () => {
    const jwt = join(pki.dir, 'sa-token');
    writeFileSync(jwt, emu.k8s.jwt + '\n');
    const k8s = new VaultTransitAdapter({ caFile: pki.caFile, kubernetesRole: 'crypto-server', kubernetesTokenFile: jwt, ...fast });
    try {
      const k = fresh();
      const logins = emu.logins;
      const w = await k8s.wrap(k.uri, Buffer.from('k'), ctx);
      expect(emu.logins).toBe(logins + 1);
      emu.tokens.clear();
      emu.tokens.add('root-test-token');
      expect((await k8s.unwrap(k.uri, w.ciphertext, ctx)).toString()).toBe('k');
      expect(emu.logins).toBe(logins + 2);
    } finally {
      await k8s.close();
    }
  });

  test('token file auth; an untrusted certificate without caFile; settings validated at start-up', async () => {
    const file = join(pki.dir, 'vault-token');
    writeFileSync(file, 'root-test-token\n');
    const viaFile = new VaultTransitAdapter({ caFile: pki.caFile, tokenFile: file, ...fast });
    const k = fresh();
    const w = await viaFile.wrap(k.uri, Buffer.from('k'), ctx);
    expect((await viaFile.unwrap(k.uri, w.ciphertext, ctx)).toString()).toBe('k');
    await viaFile.close();
    // Without the custom CA the certificate is not trusted: a configuration problem, not transient.
    const noCa = new VaultTransitAdapter({ token: 'root-test-token', ...fast, maxRetries: 0 });
    await expect(noCa.wrap(k.uri, Buffer.from('k'), ctx)).rejects.toBeInstanceOf(KmsConfigurationError);
    await noCa.close();
    expect(() => new VaultTransitAdapter({ token: 't', scheme: 'ftp' })).toThrow(ConfigError);
    expect(() => new VaultTransitAdapter({ scheme: 'https' })).toThrow(/no credentials/);
  });

  test('createKeyBeside makes a usable key on the same mount; registry loads the adapter', async () => {
    const k = fresh();
    const uri = await adapter.createKeyBeside(k.uri, `made-${n}`);
    const w = await adapter.wrap(uri, Buffer.from('k'), ctx);
    expect((await adapter.unwrap(uri, w.ciphertext, ctx)).toString()).toBe('k');
    const registry = await buildRegistry({ kekUri: uri, previousKekUris: [], adapters: { 'vault-transit': { caFile: pki.caFile, token: 'root-test-token' } } });
    try {
      await registry.check(uri);
      const env = await registry.wrap(uri, Buffer.from('pk'), ctx);
      expect((await registry.unwrap(env, ctx)).toString()).toBe('pk');
    } finally {
      await registry.close();
    }
  });
});
