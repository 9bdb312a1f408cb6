import type { KmsRegistry } from '../../kms-adapters/registry';
import type { Store } from '../repositories/store';
import { chainSql, latestCheckpoint } from './chain-sql';
import { storeSeal } from './seal';
import { verifyAuditChain } from './verify';

const DELETE_BATCH = 5000n;

export interface PruneResult {
  /** Rows deleted by this run. */
  deleted: number;
  /** The checkpoint the chain now starts after (the last deleted row's seq). */
  checkpoint?: bigint;
  /** Why nothing was pruned. */
  reason?: string;
}

/**
 * Deletes the audit rows older than `before` (a prefix of the chain: every row up to the first
 * one at or after `before`). First the rows to go are verified, then the KMS seals a checkpoint
 * (seq and hash of the last row deleted: `audit-checkpoint`), and only then are they deleted, in
 * batches — so verify starts from the checkpoint and a run cut short is finished by the next one.
 */
export async function pruneAudit(store: Store, kms: KmsRegistry, kekUri: string, before: string): Promise<PruneResult> {
  const ds = store.dataSource;
  const sql = chainSql(ds);
  const [first] = await sql.query(`SELECT MIN(seq) AS seq FROM audit_events WHERE at >= ${sql.p(1)}`, [before]);
  let through: bigint;
  if (first?.seq != null) through = BigInt(String(first.seq)) - 1n;
  else {
    const [last] = await sql.query('SELECT MAX(seq) AS seq FROM audit_events');
    if (last?.seq == null) return { deleted: 0, reason: 'the audit log is empty' };
    through = BigInt(String(last.seq));
  }
  const previous = await latestCheckpoint(sql);
  if (previous && through <= previous.seq) {
    // Nothing new to cut; finish a run that stopped between its checkpoint and its deletes.
    const deleted = await deleteThrough(store, previous.seq);
    return deleted > 0 ? { deleted, checkpoint: previous.seq } : { deleted: 0, checkpoint: previous.seq, reason: `nothing before ${before} left to prune` };
  }
  if (through <= 0n) return { deleted: 0, reason: `no audit rows before ${before}` };
  const check = await verifyAuditChain(ds, kms, { through });
  if (!check.ok) return { deleted: 0, reason: `not pruned, the chain is broken: ${check.problem}` };
  const [row] = await sql.query(`SELECT hash FROM audit_events WHERE seq = ${sql.p(1)}`, [sql.seq(through)]);
  await storeSeal(store, kms, kekUri, 'checkpoint', through, String(row.hash));
  const deleted = await deleteThrough(store, through);
  await store.audit({ actor: 'cli', action: 'audit.prune', outcome: 'success', targetType: 'audit', detail: { through: through.toString(), deleted } });
  return { deleted, checkpoint: through };
}

/** Deletes rows with seq ≤ through, a batch per statement (no long transaction, no huge lock). */
async function deleteThrough(store: Store, through: bigint): Promise<number> {
  const sql = chainSql(store.dataSource);
  const [low] = await sql.query(`SELECT MIN(seq) AS seq FROM audit_events WHERE seq <= ${sql.p(1)}`, [sql.seq(through)]);
  if (low?.seq == null) return 0;
  let deleted = 0;
  for (let lo = BigInt(String(low.seq)) - 1n; lo < through; lo += DELETE_BATCH) {
    const hi = lo + DELETE_BATCH < through ? lo + DELETE_BATCH : through;
    const [{ n }] = await sql.query<{ n: unknown }>(`SELECT COUNT(*) AS n FROM audit_events WHERE seq > ${sql.p(1)} AND seq <= ${sql.p(2)}`, [sql.seq(lo), sql.seq(hi)]);
    await store.transaction((tx) => tx.manager.query(`DELETE FROM audit_events WHERE seq > ${sql.p(1)} AND seq <= ${sql.p(2)}`, [sql.seq(lo), sql.seq(hi)]));
    deleted += Number(n);
  }
  return deleted;
}
