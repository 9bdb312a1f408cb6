import type { AppDeps } from '../http/app';
import { ownWrites } from '../repositories/runner';
import { GroupTurnRepository } from '../repositories/group-turns';
import { startAuditSealer } from './seal';

/** The sealing lease's key in group_rotation_turns (a generic lease table; group ids are UUIDs, so no clash). */
const SEAL_LEASE = 'audit-seal';

/** Periodic seals of the audit chain head for `serve` (CS_AUDIT_SEAL_INTERVAL_S; 0 = none). */
export function startAuditSealing(deps: Pick<AppDeps, 'config' | 'store' | 'kms' | 'log'>): { stop: () => Promise<void> } {
  const intervalS = deps.config.auditIntegrity.sealIntervalS;
  if (intervalS === 0) return { stop: async () => undefined };
  const leases = ownWrites(deps.store, (m) => new GroupTurnRepository(m));
  return startAuditSealer(deps.store, deps.kms, {
    intervalS,
    kekUri: deps.config.kms.kekUri,
    warn: (fields, message) => deps.log.warn(fields, message),
    error: (fields, message) => deps.log.error(fields, message),
    takeLease: (holder, ms) => {
      const now = Date.now();
      return leases((r) => r.tryTake(SEAL_LEASE, holder, new Date(now).toISOString(), new Date(now + ms).toISOString()));
    },
    releaseLease: (holder) => leases((r) => r.release(SEAL_LEASE, holder)),
  });
}
