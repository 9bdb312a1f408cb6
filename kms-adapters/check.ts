import { randomBytes } from 'node:crypto';
import type { KmsAdapter } from './types';
import { KmsConfigurationError, UnwrapRefusedError } from './errors';

/**
 * Health check shared by every adapter (check(), /readyz), and what `crypto-server doctor` runs: a random probe
 * wraps and unwraps to the same bytes, and the same blob under another context is refused —
 * proving the binding is enforced by this key, not merely that the key answers.
 */
export async function checkAdapter(adapter: KmsAdapter, keyUri: string): Promise<void> {
  const probe = randomBytes(32);
  const ctx = { purpose: 'health-check', probe: 'a' };
  const w = await adapter.wrap(keyUri, probe, ctx);
  const back = await adapter.unwrap(keyUri, w.ciphertext, ctx, w.keyVersion);
  try {
    if (!back.equals(probe)) throw new KmsConfigurationError(`${adapter.scheme}: health check round trip returned other bytes`);
  } finally {
    back.fill(0);
    probe.fill(0);
  }
  try {
    const leaked = await adapter.unwrap(keyUri, w.ciphertext, { purpose: 'health-check', probe: 'b' }, w.keyVersion);
    leaked.fill(0);
  } catch (err) {
    if (err instanceof UnwrapRefusedError) return;
    throw err;
  }
  throw new KmsConfigurationError(`${adapter.scheme}: key ${keyUri} opened a blob under the wrong associated data; binding is not enforced`);
}
