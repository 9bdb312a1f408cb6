import type { BindingContext } from '../../kms-adapters/types';

/**
 * The associated data of every wrap, in one place. Unwrap recomputes it from the authenticated
 * caller's id, so a blob of user A presented by user B fails inside the KMS, not in a lookup.
 * These strings are part of the wire format (docs/wire-formats.md): never change them in place.
 */
export const binding = {
  passwordKey: (userId: string): BindingContext => ({ purpose: 'password-key', user: userId }),
  /**
   * Version 1 keeps the original pairs (every blob stored before versions existed opens as it
   * did); from version 2 the version is bound too, so one version's blob cannot stand in for another's.
   */
  membershipKey: (groupId: string, version = 1): BindingContext =>
    version === 1 ? { purpose: 'group-membership-key', group: groupId } : { purpose: 'group-membership-key', group: groupId, version: String(version) },
  dataKey: (userId: string, label?: string): BindingContext =>
    label === undefined ? { purpose: 'data-key', user: userId } : { purpose: 'data-key', user: userId, label },
  /** A Key Connector user key (key-connector/): `sub` is the identity server's user id, a lower-case GUID. */
  keyConnectorUserKey: (sub: string): BindingContext => ({ purpose: 'key-connector-user-key', user: sub }),
  /**
   * The audit chain at `seq` (server/audit/seal.ts); the purpose tells a periodic seal from a prune
   * checkpoint; `sealed_at` is bound so a seal's age (verify's unproven-tail check) cannot be forged.
   */
  auditSeal: (kind: 'seal' | 'checkpoint', seq: string, hash: string, sealedAt: string): BindingContext => ({ purpose: `audit-${kind}`, seq, hash, sealed_at: sealedAt }),
};
