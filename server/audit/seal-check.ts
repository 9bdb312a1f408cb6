import { timingSafeEqual } from 'node:crypto';
import type { KmsRegistry } from '../../kms-adapters/registry';
import { binding } from '../keys/binding';
import { MalformedEnvelopeError, UnknownKekError, UnwrapRefusedError } from '../errors';
import type { StoredSeal } from './chain-sql';

/**
 * Whether a stored seal or checkpoint was made by the KMS for exactly its (kind, seq, hash).
 * Only this deployment's configured KEKs are contacted (registry.unwrap), so an envelope a database
 * administrator points at a KMS of their own is refused, not asked. KMS outages throw.
 */
export async function sealAuthentic(kms: KmsRegistry, s: StoredSeal): Promise<boolean> {
  let opened: Buffer;
  try {
    opened = await kms.unwrap(s.envelope, binding.auditSeal(s.kind, s.seq.toString(), s.hash, s.sealedAt));
  } catch (err) {
    if (err instanceof UnwrapRefusedError || err instanceof UnknownKekError || err instanceof MalformedEnvelopeError) return false;
    throw err;
  }
  const expected = Buffer.from(s.hash, 'hex');
  const ok = /^[0-9a-f]{64}$/.test(s.hash) && opened.length === expected.length && timingSafeEqual(opened, expected);
  opened.fill(0);
  return ok;
}
