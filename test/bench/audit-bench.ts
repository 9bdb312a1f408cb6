import { createTestContext } from '../support/context';
import type { DatabaseName } from '../support/databases';
import { auditRow } from '../../server/repositories/audit';
import { sealAuditHead } from '../../server/audit/seal';
import { verifyAuditChain } from '../../server/audit/verify';

/**
 * `audit verify` throughput: a chain of `rows` audit rows (written through the key API's group
 * commit statement, 500 a batch) with one KMS seal at its head, verified as the CLI does
 * (5,000 rows a page, every hash recomputed, the seal opened by the local KMS).
 */
export interface AuditVerifyFigure {
  database: DatabaseName;
  rows: number;
  seconds: number;
  perSecond: number;
}

export async function benchAuditVerify(opts: { rows?: number; databases?: DatabaseName[] } = {}): Promise<AuditVerifyFigure[]> {
  const n = opts.rows ?? 100_000;
  const out: AuditVerifyFigure[] = [];
  for (const database of opts.databases ?? ['sqlite', 'postgres', 'mariadb']) {
    const ctx = await createTestContext(database);
    try {
      for (let written = 0; written < n; written += 500) {
        const batch = Array.from({ length: Math.min(500, n - written) }, (_, i) =>
          auditRow({ actor: `user:${(written + i) % 977}`, action: 'password-key.unwrap', outcome: 'success', requestId: `req-${written + i}`, targetType: 'user', targetId: `u${i}` }),
        );
        await ctx.store.hot.insertAudit(batch);
      }
      await sealAuditHead(ctx.store, ctx.kms, ctx.config.kms.kekUri);
      const start = process.hrtime.bigint();
      const r = await verifyAuditChain(ctx.store.dataSource, ctx.kms, { pageSize: 5000 });
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (!r.ok) throw new Error(`the seeded chain does not verify: ${r.problem}`);
      out.push({ database, rows: r.rows, seconds, perSecond: r.rows / seconds });
    } finally {
      await ctx.cleanup();
    }
  }
  return out;
}

if (require.main === module) {
  benchAuditVerify({ rows: Number(process.argv[2] ?? 100_000) }).then(
    (r) => console.log(r),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
