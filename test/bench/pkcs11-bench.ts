import { randomBytes } from 'node:crypto';
import { canonicalContext } from '../../kms-adapters/associated-data';
import { createAdapter, type Pkcs11Adapter } from '../../kms-adapters/pkcs11';
import { createSoftHsm, findRawKey, withRawSession } from '../support/softhsm';

export interface Pkcs11BenchOptions {
  /** How long each measurement runs. */
  durationMs?: number;
  /** Adapter unwraps kept in flight (default 4, the default pool size: a busy server). */
  concurrency?: number;
}

/**
 * Unwraps per second through the adapter (pool, URI parsing, AAD, async worker-thread calls) vs
 * the bare limit: C_DecryptInit + C_Decrypt in a tight synchronous loop on one raw session, same
 * key, same 32-byte blob. Sets up and deletes its own SoftHSM2 token.
 */
export async function benchPkcs11(options: Pkcs11BenchOptions = {}): Promise<{ unwrapsPerSecond: number; rawUnwrapsPerSecond: number }> {
  const durationMs = options.durationMs ?? 2000;
  const concurrency = options.concurrency ?? 4;
  const hsm = createSoftHsm(['cs-bench']);
  try {
    const settings = { module: hsm.module, pin: hsm.pin, token: 'cs-bench', sessions: Math.max(concurrency, 1) };
    const adapter = (await createAdapter({ settings })) as Pkcs11Adapter;
    try {
      const keyUri = await adapter.createKey('bench-kek');
      const ctx = { purpose: 'password-key', user: 'bench' };
      const { ciphertext } = await adapter.wrap(keyUri, randomBytes(32), ctx);

      const unwrapsPerSecond = await perSecond(durationMs, async (until) => {
        let n = 0;
        const worker = async () => {
          while (Date.now() < until) {
            (await adapter.unwrap(keyUri, ciphertext, ctx)).fill(0);
            n++;
          }
        };
        await Promise.all(Array.from({ length: concurrency }, worker));
        return n;
      });

      // The adapter keeps the library initialised and the token logged in; this shares both.
      const rawUnwrapsPerSecond = await withRawSession(hsm, 'cs-bench', (p11, api, session) => {
        const key = findRawKey(p11, api, session, 'bench-kek');
        const mechanism = {
          mechanism: api.CKM_AES_GCM,
          parameter: { type: api.CK_PARAMS_AES_GCM, iv: ciphertext.subarray(0, 12), aad: canonicalContext(ctx), ivBits: 96, tagBits: 128 },
        };
        const body = ciphertext.subarray(12);
        const out = Buffer.alloc(body.length);
        return perSecond(durationMs, async (until) => {
          let n = 0;
          while (Date.now() < until) {
            p11.C_DecryptInit(session, mechanism, key);
            p11.C_Decrypt(session, body, out);
            n++;
          }
          out.fill(0);
          return n;
        });
      });
      return { unwrapsPerSecond, rawUnwrapsPerSecond };
    } finally {
      await adapter.close();
    }
  } finally {
    hsm.cleanup();
  }
}

async function perSecond(durationMs: number, run: (until: number) => Promise<number>): Promise<number> {
  const start = process.hrtime.bigint();
  const n = await run(Date.now() + durationMs);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return Math.round(n / seconds);
}
