import net from 'node:net';
import { register } from 'prom-client';
import { Resilience, TimeoutError, type ErrorClass } from '../../kms-adapters/resilience';
import { buildRegistry } from '../../kms-adapters/registry';
import { denyNonLoopback } from '../emulators/offline';
import { KmsConfigurationError, KmsUnavailableError, UnwrapRefusedError } from '../../server/errors';

denyNonLoopback();

class Transient extends Error {}
class Refused extends Error {}
const classify = (err: unknown): ErrorClass =>
  err instanceof Transient || err instanceof TimeoutError
    ? { kind: 'transient', detail: String(err) }
    : err instanceof Refused
      ? { kind: 'refused', detail: 'bad tag' }
      : { kind: 'config', detail: 'denied' };

describe('resilience', () => {
  test('retries transient faults up to maxRetries, then KmsUnavailableError', async () => {
    const r = new Resilience('test', classify, { maxRetries: 2, baseDelayMs: 1, maxDelayMs: 2 });
    let calls = 0;
    await expect(r.call('op', async () => { calls++; throw new Transient('busy'); })).rejects.toBeInstanceOf(KmsUnavailableError);
    expect(calls).toBe(3);
    calls = 0;
    await expect(r.call('op', async () => (++calls < 3 ? Promise.reject(new Transient('busy')) : 'ok'))).resolves.toBe('ok');
  });

  test('refusals and configuration errors are not retried', async () => {
    const r = new Resilience('test', classify, { baseDelayMs: 1 });
    let calls = 0;
    await expect(r.call('decrypt', async () => { calls++; throw new Refused(); })).rejects.toBeInstanceOf(UnwrapRefusedError);
    await expect(r.call('decrypt', async () => { calls++; throw new Error('AccessDenied'); })).rejects.toBeInstanceOf(KmsConfigurationError);
    expect(calls).toBe(2);
    // Typed errors raised by the adapter itself pass through untouched.
    const own = new UnwrapRefusedError('digest');
    await expect(r.call('decrypt', async () => { throw own; })).rejects.toBe(own);
  });

  test('a hung call is cut at timeoutMs', async () => {
    const r = new Resilience('test', classify, { timeoutMs: 50, maxRetries: 0 });
    let aborted = false;
    await expect(r.call('op', (signal) => new Promise(() => signal.addEventListener('abort', () => (aborted = true))))).rejects.toBeInstanceOf(KmsUnavailableError);
    expect(aborted).toBe(true);
  });

  test('a plaintext that arrives after the timeout is zeroed, bare or inside an SDK response object', async () => {
    const r = new Resilience('test', classify, { timeoutMs: 30, maxRetries: 0 });
    const bare = Buffer.from('secret-key-bytes');
    const inObject = { Plaintext: new Uint8Array([1, 2, 3, 4]), KeyId: 'k' };
    for (const late of [bare, inObject]) {
      let deliver!: () => void;
      const arrived = new Promise<void>((res) => (deliver = res));
      await expect(r.call('decrypt', () => new Promise((res) => setTimeout(() => { res(late); deliver(); }, 80)))).rejects.toBeInstanceOf(KmsUnavailableError);
      await arrived;
      await new Promise((res) => setImmediate(res));
    }
    expect(bare.every((b) => b === 0)).toBe(true);
    expect(inObject.Plaintext.every((b) => b === 0)).toBe(true);
  });

  test('breaker opens after the threshold, fails fast, lets one trial through after the cooldown, and closes on success', async () => {
    const r = new Resilience('test', classify, { maxRetries: 0, breakerThreshold: 2, breakerCooldownMs: 100 });
    const fail = () => r.call('op', async () => { throw new Transient('down'); });
    await expect(fail()).rejects.toBeInstanceOf(KmsUnavailableError);
    await expect(fail()).rejects.toBeInstanceOf(KmsUnavailableError);
    expect(r.breakerState).toBe('open');
    let reached = 0;
    const e = await r.call('op', async () => ++reached).catch((x) => x);
    expect(e).toBeInstanceOf(KmsUnavailableError);
    expect(e.retryAfter).toBeGreaterThanOrEqual(1);
    expect(reached).toBe(0);
    await new Promise((res) => setTimeout(res, 120));
    // Half-open: one trial; a concurrent second call is still refused.
    let release!: () => void;
    const trial = r.call('op', () => new Promise<string>((res) => (release = () => res('ok'))));
    await expect(r.call('op', async () => 'second')).rejects.toBeInstanceOf(KmsUnavailableError);
    release();
    await expect(trial).resolves.toBe('ok');
    expect(r.breakerState).toBe('closed');
  });

  test('records a duration histogram per provider, op and outcome', async () => {
    const r = new Resilience('metrics-test', classify, { maxRetries: 0 });
    await r.call('encrypt', async () => 1);
    await r.call('decrypt', async () => { throw new Refused(); }).catch(() => undefined);
    const text = await register.getSingleMetricAsString('crypto_server_kms_call_duration_seconds');
    expect(text).toMatch(/crypto_server_kms_call_duration_seconds_count\{provider="metrics-test",op="encrypt",outcome="ok"\} 1/);
    expect(text).toMatch(/provider="metrics-test",op="decrypt",outcome="refused"/);
  });
});

describe('cloud adapters in the registry', () => {
  test('all four schemes load by dynamic import without touching the network', async () => {
    const registry = await buildRegistry({
      kekUri: 'aws-kms://arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      previousKekUris: [
        'gcp-kms://projects/acme/locations/global/keyRings/r/cryptoKeys/k',
        'azure-kv://acme.vault.azure.net/keys/kek',
        'vault-transit://vault.internal:8200/transit/keys/kek',
      ],
      adapters: { 'aws-kms': { region: 'eu-west-1' }, 'vault-transit': { token: 'x' } },
    });
    expect(registry.schemes.sort()).toEqual(['aws-kms', 'azure-kv', 'gcp-kms', 'vault-transit']);
    await registry.close();
  });

  test('the offline guard refuses connections off the loopback', () => {
    expect(() => net.connect(443, 'example.com')).toThrow(/offline test tried to connect to example.com/);
  });
});
