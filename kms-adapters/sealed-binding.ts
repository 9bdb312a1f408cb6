import { createHash, timingSafeEqual } from 'node:crypto';
import type { BindingContext } from './types';
import { canonicalContext } from './associated-data';
import { UnwrapRefusedError } from './errors';

/**
 * Binding for KEKs without an associated-data field (RSA-OAEP keys in Azure Key Vault, AWS and
 * GCP asymmetric keys): the wrapped plaintext is SHA-256(canonicalContext) || key, so a blob
 * bound to user A opens for user B only as a digest mismatch, which we refuse.
 */
const DIGEST = 32;

export function sealContext(context: BindingContext, key: Uint8Array): Buffer {
  const digest = createHash('sha256').update(canonicalContext(context)).digest();
  return Buffer.concat([digest, key]);
}

/** Checks the sealed digest in constant time and returns the key; zeroes the input buffer. */
export function openSealed(context: BindingContext, sealed: Buffer, provider: string): Buffer {
  try {
    const expected = createHash('sha256').update(canonicalContext(context)).digest();
    if (sealed.length <= DIGEST || !timingSafeEqual(sealed.subarray(0, DIGEST), expected)) {
      throw new UnwrapRefusedError(`${provider}: sealed associated-data digest does not match`);
    }
    return Buffer.from(sealed.subarray(DIGEST));
  } finally {
    sealed.fill(0);
  }
}

