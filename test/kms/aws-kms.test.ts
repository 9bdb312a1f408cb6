import { randomBytes } from 'node:crypto';
import { register } from 'prom-client';
import { runKmsContract } from './contract';
import { AwsKmsEmulator, ACCOUNT, REGION } from '../emulators/aws-kms';
import { AwsKmsAdapter } from '../../kms-adapters/aws-kms';
import { useFakeAwsCredentials } from '../emulators/credentials';
import { denyNonLoopback } from '../emulators/offline';
import { buildRegistry } from '../../kms-adapters/registry';
import { asAppError, KmsConfigurationError, KmsUnavailableError, UnwrapRefusedError } from '../../server/errors';

// Offline: explicit fake credentials so the SDK signs without looking for a metadata service,
// and any connection off the loopback fails the test.
useFakeAwsCredentials(REGION);
denyNonLoopback();

const fast = { baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 2000 };
const ctx = { purpose: 'password-key', user: 'alice' };

async function subject(spec: 'SYMMETRIC_DEFAULT' | 'RSA_2048') {
  const emu = await new AwsKmsEmulator().start();
  return {
    adapter: new AwsKmsAdapter({ endpoint: emu.endpoint, region: REGION, ...fast }),
    keyUri: `aws-kms://${emu.addKey(spec).arn}`,
    otherKeyUri: `aws-kms://${emu.addKey(spec).arn}`,
    teardown: () => emu.close(),
  };
}

runKmsContract('aws-kms (symmetric, EncryptionContext)', () => subject('SYMMETRIC_DEFAULT'));
runKmsContract('aws-kms (RSA_2048, sealed digest)', () => subject('RSA_2048'));

describe('aws-kms adapter against the emulator', () => {
  let emu: AwsKmsEmulator;
  let adapter: AwsKmsAdapter;
  beforeAll(async () => {
    emu = await new AwsKmsEmulator().start();
  });
  beforeEach(() => {
    emu.faults.reset();
    adapter = new AwsKmsAdapter({ endpoint: emu.endpoint, region: REGION, maxRetries: 3, breakerThreshold: 3, breakerCooldownMs: 60_000, ...fast });
  });
  afterEach(() => adapter.close());
  afterAll(() => emu.close());
  const uri = (k: { arn: string }) => `aws-kms://${k.arn}`;

  test('records the key ARN as keyVersion; blobs survive key rotation', async () => {
    const key = emu.addKey();
    const pt = randomBytes(32);
    const before = await adapter.wrap(uri(key), pt, ctx);
    expect(before.keyVersion).toBe(key.arn);
    emu.rotate(key);
    const after = await adapter.wrap(uri(key), pt, ctx);
    expect(after.ciphertext.equals(before.ciphertext)).toBe(false);
    expect((await adapter.unwrap(uri(key), before.ciphertext, ctx, before.keyVersion)).equals(pt)).toBe(true);
    expect((await adapter.unwrap(uri(key), after.ciphertext, ctx, after.keyVersion)).equals(pt)).toBe(true);
  });

  test('an alias blob still opens after the alias moves to a new key (keyVersion names the old key)', async () => {
    const oldKey = emu.addKey();
    const aliasArn = emu.setAlias('cs-kek', oldKey);
    const pt = randomBytes(32);
    const w = await adapter.wrap(`aws-kms://${aliasArn}`, pt, ctx);
    expect(w.keyVersion).toBe(oldKey.arn);
    emu.setAlias('cs-kek', emu.addKey());
    expect((await adapter.unwrap(`aws-kms://${aliasArn}`, w.ciphertext, ctx, w.keyVersion)).equals(pt)).toBe(true);
    // A keyVersion pointing outside the alias's account is ignored, not followed.
    const foreign = oldKey.arn.replace(ACCOUNT, '999999999999');
    await expect(adapter.unwrap(`aws-kms://${aliasArn}`, w.ciphertext, ctx, foreign)).rejects.toBeInstanceOf(UnwrapRefusedError);
  });

  test('encryption-context mismatch is refused by KMS → UnwrapRefusedError', async () => {
    const key = emu.addKey();
    const w = await adapter.wrap(uri(key), randomBytes(32), ctx);
    const err = await adapter.unwrap(uri(key), w.ciphertext, { purpose: 'password-key', user: 'mallory' }).catch((e) => e);
    expect(err).toBeInstanceOf(UnwrapRefusedError);
    expect(err.internalDetail).toMatch(/InvalidCiphertextException/);
  });

  test('throttling is retried with back-off and then succeeds', async () => {
    const key = emu.addKey();
    const w = await adapter.wrap(uri(key), Buffer.from('k'), ctx);
    emu.faults.throttleNext = 2;
    const n = emu.faults.requests;
    expect((await adapter.unwrap(uri(key), w.ciphertext, ctx)).toString()).toBe('k');
    expect(emu.faults.requests - n).toBe(3);
    const metrics = await register.getSingleMetricAsString('crypto_server_kms_call_duration_seconds');
    expect(metrics).toMatch(/provider="aws-kms",op="decrypt",outcome="ok"/);
  });

  test('a 5xx burst is retried; a call slower than the timeout is retried', async () => {
    const key = emu.addKey();
    emu.faults.errorNext = 1;
    const w = await adapter.wrap(uri(key), Buffer.from('k'), ctx);
    emu.faults.delayNext = 1;
    emu.faults.delayMs = 2500; // beyond timeoutMs 2000
    const before = emu.faults.requests;
    expect((await adapter.unwrap(uri(key), w.ciphertext, ctx)).toString()).toBe('k');
    expect(emu.faults.requests - before).toBe(2); // the slow call, cut at the timeout, then the retry
  });

  test('a dead KMS trips the breaker: later calls fail fast without reaching it', async () => {
    const key = emu.addKey();
    await adapter.wrap(uri(key), Buffer.from('k'), ctx); // caches DescribeKey
    emu.faults.down = true;
    for (let i = 0; i < 3; i++) await expect(adapter.wrap(uri(key), Buffer.from('k'), ctx)).rejects.toBeInstanceOf(KmsUnavailableError);
    expect(adapter.resilience.breakerState).toBe('open');
    const seen = emu.faults.requests;
    const err = await adapter.wrap(uri(key), Buffer.from('k'), ctx).catch((e) => e);
    expect(err).toBeInstanceOf(KmsUnavailableError);
    expect(asAppError(err)?.status).toBe(503); // as the app maps it
    expect(err.retryAfter).toBeGreaterThan(0);
    expect(emu.faults.requests).toBe(seen);
  });

  test('access denied and a disabled key are configuration errors with operator detail', async () => {
    const denied = emu.addKey();
    denied.denied = true;
    const e1 = await adapter.wrap(uri(denied), Buffer.from('k'), ctx).catch((e) => e);
    expect(e1).toBeInstanceOf(KmsConfigurationError);
    expect(e1.internalDetail).toMatch(/AccessDeniedException/);
    expect(e1.message).not.toMatch(/AccessDenied/); // client-facing text stays generic
    const disabled = emu.addKey();
    await adapter.wrap(uri(disabled), Buffer.from('k'), ctx);
    disabled.state = 'Disabled';
    const e2 = await adapter.wrap(uri(disabled), Buffer.from('k'), ctx).catch((e) => e);
    expect(e2).toBeInstanceOf(KmsConfigurationError);
    expect(e2.internalDetail).toMatch(/DisabledException/);
    expect(adapter.resilience.breakerState).toBe('closed');
  });

  test('rewrap re-encrypts inside KMS under another key, keeping the binding', async () => {
    const a = emu.addKey();
    const b = emu.addKey();
    const pt = randomBytes(32);
    const w = await adapter.wrap(uri(a), pt, ctx);
    const r = await adapter.rewrap(uri(a), w.ciphertext, ctx, uri(b));
    expect(r.keyVersion).toBe(b.arn);
    expect((await adapter.unwrap(uri(b), r.ciphertext, ctx)).equals(pt)).toBe(true);
    await expect(adapter.rewrap(uri(a), w.ciphertext, { purpose: 'x' }, uri(b))).rejects.toBeInstanceOf(UnwrapRefusedError);
  });

  test('loads through the registry by scheme and passes check()', async () => {
    const key = emu.addKey();
    const registry = await buildRegistry({ kekUri: uri(key), previousKekUris: [], adapters: { 'aws-kms': { endpoint: emu.endpoint, region: REGION } } });
    try {
      await registry.check(uri(key));
      const env = await registry.wrap(uri(key), Buffer.from('pk'), ctx);
      expect((await registry.unwrap(env, ctx)).toString()).toBe('pk');
    } finally {
      await registry.close();
    }
  });
});
