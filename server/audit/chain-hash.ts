import { createHash } from 'node:crypto';
import type { AuditEventRow } from '../../entities/audit-event';

/**
 * The audit chain's hash (docs/operations.md, "Audit integrity"). Part of the stored format:
 * rows already written must keep verifying, so never change the encoding in place.
 */

/** prev_hash of the first row ever written, and the head of an empty chain. */
export const GENESIS_HASH = '0'.repeat(64);

/** The fields a row's hash covers, as stored (seq as a decimal string: drivers return bigint as string). */
export type ChainedFields = Pick<AuditEventRow, 'at' | 'requestId' | 'actor' | 'action' | 'targetType' | 'targetId' | 'kekUri' | 'detail'> & {
  seq: string;
  outcome: string;
  prevHash: string;
};

/**
 * SHA-256 (hex) over a JSON array in fixed field order: JSON gives every string and null one
 * unambiguous encoding, so no two different rows share an input.
 */
export function chainHash(r: ChainedFields): string {
  const canonical = JSON.stringify([r.seq, r.at, r.requestId, r.actor, r.action, r.targetType, r.targetId, r.kekUri, r.outcome, r.detail, r.prevHash]);
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}
