import type { BindingContext } from './types';
import { KmsRequestError } from './errors';

const KEY = /^[a-z][a-z0-9_-]{0,63}$/;
const MAX_VALUE = 1024;

/** Refuses contexts that could be ambiguous or abused; called before every wrap and unwrap. */
export function validateContext(context: BindingContext): void {
  if (typeof context?.purpose !== 'string' || context.purpose.length === 0) {
    throw new KmsRequestError('associated data must name a purpose');
  }
  for (const [k, v] of Object.entries(context)) {
    if (!KEY.test(k)) throw new KmsRequestError(`associated data key "${k.slice(0, 64)}" is not allowed`);
    if (typeof v !== 'string' || v.length > MAX_VALUE) {
      throw new KmsRequestError(`associated data value for "${k}" must be a string of at most ${MAX_VALUE} characters`);
    }
  }
}

/**
 * Canonical bytes of a context for KMSs that take associated data as bytes (AES-GCM AAD, GCP AAD,
 * Vault associated_data): UTF-8 JSON of the pairs sorted by key, no whitespace. Keys cannot look
 * like integers (KEY starts with a letter), so JSON.stringify keeps the sorted order.
 * Documented with test vectors in docs/wire-formats.md; never change it in place.
 */
export function canonicalContext(context: BindingContext): Buffer {
  validateContext(context);
  const sorted = Object.fromEntries(Object.entries(context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return Buffer.from(JSON.stringify(sorted), 'utf8');
}
