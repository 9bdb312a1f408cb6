import { randomBytes } from 'node:crypto';
import type { KmsAdapter } from '../../kms-adapters/types';
import { KmsRegistry } from '../../kms-adapters/registry';
import { decodeEnvelope } from '../../kms-adapters/envelope';
import { UnknownKekError, UnwrapRefusedError } from '../../server/errors';

export interface ContractSubject {
  adapter: KmsAdapter;
  /** A usable KEK. */
  keyUri: string;
  /** A second, different usable KEK of the same adapter. */
  otherKeyUri: string;
  teardown?: () => Promise<void>;
}

/**
 * The contract every KMS adapter must pass unchanged: round trip, binding (wrong associated data
 * fails), integrity (tampered ciphertext fails), key separation, concurrency, health, key creation.
 */
export function runKmsContract(name: string, setup: () => Promise<ContractSubject>): void {
  describe(`KMS adapter contract: ${name}`, () => {
    let s: ContractSubject;
    const ctxA = { purpose: 'password-key', user: 'user-a' };
    beforeAll(async () => {
      s = await setup();
    });
    afterAll(async () => {
      await s?.adapter.close();
      await s?.teardown?.();
    });

    test('wrap then unwrap returns the plaintext', async () => {
      const pt = randomBytes(32);
      const { ciphertext } = await s.adapter.wrap(s.keyUri, pt, ctxA);
      expect(Buffer.from(ciphertext).includes(pt)).toBe(false);
      expect((await s.adapter.unwrap(s.keyUri, ciphertext, ctxA)).equals(pt)).toBe(true);
    });

    test('two wraps of the same plaintext differ (randomised)', async () => {
      const pt = randomBytes(32);
      const a = await s.adapter.wrap(s.keyUri, pt, ctxA);
      const b = await s.adapter.wrap(s.keyUri, pt, ctxA);
      expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
    });

    test.each([
      ['another user', { purpose: 'password-key', user: 'user-b' }],
      ['another purpose', { purpose: 'data-key', user: 'user-a' }],
      ['an extra pair', { purpose: 'password-key', user: 'user-a', group: 'g' }],
      ['a missing pair', { purpose: 'password-key' }],
    ])('unwrap with %s as associated data is refused', async (_label, wrong) => {
      const { ciphertext, keyVersion } = await s.adapter.wrap(s.keyUri, randomBytes(32), ctxA);
      await expect(s.adapter.unwrap(s.keyUri, ciphertext, wrong as never, keyVersion)).rejects.toBeInstanceOf(UnwrapRefusedError);
    });

    test('a tampered ciphertext is refused (first, middle and last byte)', async () => {
      const { ciphertext, keyVersion } = await s.adapter.wrap(s.keyUri, randomBytes(32), ctxA);
      for (const i of [0, Math.floor(ciphertext.length / 2), ciphertext.length - 1]) {
        const bad = Buffer.from(ciphertext);
        bad[i] ^= 0x01;
        await expect(s.adapter.unwrap(s.keyUri, bad, ctxA, keyVersion)).rejects.toBeInstanceOf(UnwrapRefusedError);
      }
      const truncated = Buffer.from(ciphertext).subarray(0, ciphertext.length - 1);
      await expect(s.adapter.unwrap(s.keyUri, truncated, ctxA, keyVersion)).rejects.toBeInstanceOf(UnwrapRefusedError);
    });

    test('a blob wrapped under one KEK does not open under another', async () => {
      const { ciphertext, keyVersion } = await s.adapter.wrap(s.keyUri, randomBytes(32), ctxA);
      await expect(s.adapter.unwrap(s.otherKeyUri, ciphertext, ctxA, keyVersion)).rejects.toBeInstanceOf(UnwrapRefusedError);
    });

    test('concurrent wraps and unwraps all round-trip', async () => {
      const inputs = Array.from({ length: 40 }, (_, i) => ({ pt: randomBytes(32), ctx: { purpose: 'password-key', user: `u${i}` } }));
      const wrapped = await Promise.all(inputs.map((x) => s.adapter.wrap(s.keyUri, x.pt, x.ctx)));
      const opened = await Promise.all(wrapped.map((w, i) => s.adapter.unwrap(s.keyUri, w.ciphertext, inputs[i].ctx, w.keyVersion)));
      opened.forEach((o, i) => expect(o.equals(inputs[i].pt)).toBe(true));
    });

    test('health check passes on a usable key', async () => {
      await expect(s.adapter.check(s.keyUri)).resolves.toBeUndefined();
    });

    test('through the registry, envelopes name the KEK and open only with the same context', async () => {
      const registry = new KmsRegistry(new Map([[s.adapter.scheme, s.adapter]]), [s.keyUri]);
      const pt = randomBytes(32);
      const env = await registry.wrap(s.keyUri, pt, ctxA);
      expect(decodeEnvelope(env).kekUri).toBe(s.keyUri);
      expect((await registry.unwrap(env, ctxA)).equals(pt)).toBe(true);
      await expect(registry.unwrap(env, { purpose: 'password-key', user: 'user-b' })).rejects.toBeInstanceOf(UnwrapRefusedError);
    });

    test('an envelope naming a KEK this deployment does not use is refused without calling the adapter', async () => {
      const registry = new KmsRegistry(new Map([[s.adapter.scheme, s.adapter]]), [s.keyUri]);
      const env = await registry.wrap(s.otherKeyUri, randomBytes(32), ctxA);
      const spied = jest.spyOn(s.adapter, 'unwrap');
      try {
        await expect(registry.unwrap(env, ctxA)).rejects.toBeInstanceOf(UnknownKekError);
        expect(spied).not.toHaveBeenCalled();
        expect((await registry.unwrap(env, ctxA, [s.otherKeyUri])).length).toBe(32);
        expect((await registry.unwrapStored(env, ctxA)).length).toBe(32);
      } finally {
        spied.mockRestore();
      }
    });

    test('createKey, when offered, yields a new usable key distinct from the others', async () => {
      if (!s.adapter.createKey) return; // capability is optional; adapters without it skip
      const uri = await s.adapter.createKey(`contract-${randomBytes(4).toString('hex')}`);
      expect(uri).not.toBe(s.keyUri);
      const pt = randomBytes(32);
      const w = await s.adapter.wrap(uri, pt, ctxA);
      expect((await s.adapter.unwrap(uri, w.ciphertext, ctxA, w.keyVersion)).equals(pt)).toBe(true);
      await expect(s.adapter.unwrap(s.keyUri, w.ciphertext, ctxA, w.keyVersion)).rejects.toBeInstanceOf(UnwrapRefusedError);
    });
  });
}
