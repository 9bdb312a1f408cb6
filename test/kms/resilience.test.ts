import net from 'node:net';
import { register } from 'prom-client';
import { Resilience, resilienceSettings, TimeoutError, type ErrorClass } from '../../kms-adapters/resilience';
import { loadConfig } from '../../server/config';
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

  test('a hung KMS: one call with its retries ends within deadlineMs (+ slack), not (retries+1) × timeoutMs', async () => {
    const r = new Resilience('test', classify, { timeoutMs: 300, deadlineMs: 400, maxRetries: 3, baseDelayMs: 1, maxDelayMs: 5 });
    let attempts = 0;
    const start = performance.now();
    const e = await r.call('decrypt', () => { attempts++; return new Promise<never>(() => undefined); }).catch((x: KmsUnavailableError) => x);
    const elapsed = performance.now() - start;
    expect(e).toBeInstanceOf(KmsUnavailableError);
    expect(e.retryAfter).toBeGreaterThanOrEqual(1);
    expect(elapsed).toBeLessThan(400 + 150);
    // It did retry inside the deadline: the second attempt got only the 100 ms left.
    expect(attempts).toBe(2);
  });

  test('back-off that would overrun the deadline ends the call instead of sleeping past it', async () => {
    const r = new Resilience('test', classify, { timeoutMs: 1000, deadlineMs: 200, maxRetries: 5, baseDelayMs: 1000, maxDelayMs: 1000 });
    let attempts = 0;
    const start = performance.now();
    // A throttled KMS asking for 800 ms between attempts.
    const e = await r.call('encrypt', async () => { attempts++; throw new Transient('throttled'); }).catch((x) => x);
    expect(e).toBeInstanceOf(KmsUnavailableError);
    expect(performance.now() - start).toBeLessThan(200 + 150);
    expect(attempts).toBeGreaterThanOrEqual(1);
  });

  test('the default deadline is the attempt timeout plus one second', () => {
    expect(new Resilience('test', classify, { timeoutMs: 2000 }).deadlineMs).toBe(3000);
    expect(new Resilience('test', classify, {}).deadlineMs).toBe(6000);
  });

  test('CS_KMS_DEADLINE_MS reaches every cloud adapter; a non-positive value stops start-up', () => {
    const c = loadConfig({ CS_KMS_DEADLINE_MS: '1500', CS_KMS_TIMEOUT_MS: '1000' });
    for (const scheme of ['aws-kms', 'gcp-kms', 'azure-kv', 'vault-transit']) {
      expect(resilienceSettings(c.kms.adapters[scheme])).toMatchObject({ deadlineMs: 1500, timeoutMs: 1000 });
    }
    expect(() => loadConfig({ CS_KMS_DEADLINE_MS: '0' })).toThrow(/CS_KMS_DEADLINE_MS/);
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
