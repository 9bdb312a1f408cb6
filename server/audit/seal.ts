import { randomUUID } from 'node:crypto';
import type { Store } from '../repositories/store';
import type { KmsRegistry } from '../../kms-adapters/registry';
import { AuditSealEntity, type AuditSealKind } from '../../entities';
import { binding } from '../keys/binding';
import { uniqueViolation } from '../repositories/db-errors';
import { chainSql, readHead } from './chain-sql';
import { verifyAuditChain } from './verify';

export interface SealResult {
  /** false: nothing to seal (empty chain, already sealed at this seq, or the chain is broken). */
  sealed: boolean;
  seq: bigint;
  hash: string;
  /** Why nothing was sealed. */
  reason?: string;
}

/**
 * Has the KMS wrap `hash` under `kekUri` bound to (kind, seq, hash) and stores it. The KMS call
 * runs with no transaction open; the insert is one statement. The unique (kind, seq) index makes
 * a second seal of the same position (another replica, the same moment) a no-op.
 */
export async function storeSeal(store: Store, kms: KmsRegistry, kekUri: string, kind: AuditSealKind, seq: bigint, hash: string): Promise<boolean> {
  const plain = Buffer.from(hash, 'hex');
  const envelope = await kms.wrap(kekUri, plain, binding.auditSeal(kind, seq.toString(), hash));
  try {
    await store.transaction((tx) => tx.manager.insert(AuditSealEntity, { kind, seq: seq.toString(), hash, envelope, sealedAt: new Date().toISOString() }));
    return true;
  } catch (err) {
    if (uniqueViolation(err)) return false;
    throw err;
  }
}

/**
 * Seals the current chain head — after checking the rows since the previous seal, so a chain
 * already tampered with is never vouched for by the KMS.
 */
export async function sealAuditHead(store: Store, kms: KmsRegistry, kekUri: string): Promise<SealResult> {
  const ds = store.dataSource;
  const sql = chainSql(ds);
  // In a transaction of its own: on SQLite's one connection a plain read could see the head an
  // open transaction moved and may yet roll back. Rows up to a committed head never change.
  const head = await store.transaction((tx) => readHead(chainSql(tx.manager)));
  if (!head) throw new Error('audit_chain_head has no row: run `crypto-server migrate`');
  if (head.seq === 0n) return { sealed: false, seq: 0n, hash: head.hash, reason: 'the audit chain is empty' };
  const [last] = await sql.query(`SELECT MAX(seq) AS seq FROM audit_seals WHERE kind = 'seal'`);
  const lastSealed = last?.seq == null ? undefined : BigInt(String(last.seq));
  if (lastSealed !== undefined && lastSealed >= head.seq) return { sealed: false, seq: head.seq, hash: head.hash, reason: `already sealed at seq ${lastSealed}` };
  const check = await verifyAuditChain(ds, kms, { since: lastSealed?.toString(), through: head.seq });
  if (!check.ok) return { sealed: false, seq: head.seq, hash: head.hash, reason: `not sealed, the chain is broken: ${check.problem}` };
  const [row] = await sql.query(`SELECT hash FROM audit_events WHERE seq = ${sql.p(1)}`, [sql.seq(head.seq)]);
  if (!row || String(row.hash) !== head.hash) return { sealed: false, seq: head.seq, hash: head.hash, reason: `not sealed, the chain head does not match the row at seq ${head.seq}` };
  const sealed = await storeSeal(store, kms, kekUri, 'seal', head.seq, head.hash);
  return sealed ? { sealed, seq: head.seq, hash: head.hash } : { sealed, seq: head.seq, hash: head.hash, reason: `already sealed at seq ${head.seq}` };
}

export interface SealerOptions {
  intervalS: number;
  kekUri: string;
  /** Where a failed or refused seal is reported. */
  warn: (fields: Record<string, unknown>, message: string) => void;
  /** Takes the cluster-wide sealing lease for `ms`; false when another process holds it. */
  takeLease: (holder: string, ms: number) => Promise<boolean>;
  releaseLease: (holder: string) => Promise<void>;
}

/** Longest a seal (verify since the last one + one KMS wrap) may hold the lease before another process may take over. */
const SEAL_LEASE_MS = 120_000;

/**
 * Seals the head every `intervalS` seconds. Every worker and replica runs one: the lease lets one
 * process seal at a time, and one that finds a seal younger than most of an interval (another
 * process's) skips its turn, so the cluster seals about once per interval. A process that dies
 * holding the lease delays sealing by SEAL_LEASE_MS at most.
 */
export function startAuditSealer(store: Store, kms: KmsRegistry, o: SealerOptions): { stop: () => Promise<void> } {
  const holder = `${process.pid}:${randomUUID()}`;
  let running: Promise<void> | undefined;
  const tick = () => {
    running ??= (async () => {
      try {
        if (!(await o.takeLease(holder, SEAL_LEASE_MS))) return;
        try {
          const last = await lastSealedAt(store);
          if (last !== undefined && Date.now() - last < o.intervalS * 800) return;
          const r = await sealAuditHead(store, kms, o.kekUri);
          if (!r.sealed && r.reason?.startsWith('not sealed')) o.warn({ seq: r.seq.toString() }, `audit seal: ${r.reason}`);
        } finally {
          await o.releaseLease(holder);
        }
      } catch (err) {
        o.warn({ err: (err as Error).message }, 'audit seal failed; the next interval tries again');
      } finally {
        running = undefined;
      }
    })();
  };
  // Jitter: processes started together do not all reach for the lease in the same instant.
  const timer = setInterval(tick, o.intervalS * 1000 * (0.9 + Math.random() * 0.2));
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}

async function lastSealedAt(store: Store): Promise<number | undefined> {
  const [r] = await chainSql(store.dataSource).query(`SELECT MAX(sealed_at) AS at FROM audit_seals WHERE kind = 'seal'`);
  return r?.at == null ? undefined : Date.parse(String(r.at));
}
