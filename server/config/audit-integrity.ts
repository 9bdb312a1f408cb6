import { z } from 'zod';

/** The tamper-evident audit chain and its KMS seals (docs/operations.md, "Audit integrity"). */
export const auditIntegrityEnv = z.object({
  /** off: rows still get seq in commit order, but no hash (for measuring the chain's cost; verify then fails). */
  CS_AUDIT_CHAIN: z.enum(['on', 'off']).default('on'),
  /** Seconds between KMS seals of the chain head (one process of the cluster seals each time); 0 = no periodic seals. */
  CS_AUDIT_SEAL_INTERVAL_S: z.coerce.number().int().min(0).max(86_400).default(300),
});

export function auditIntegrityConfig(e: z.infer<typeof auditIntegrityEnv>) {
  return { auditIntegrity: { chain: e.CS_AUDIT_CHAIN === 'on', sealIntervalS: e.CS_AUDIT_SEAL_INTERVAL_S } };
}
