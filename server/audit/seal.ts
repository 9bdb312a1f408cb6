import { randomUUID } from 'node:crypto';
import { Gauge } from 'prom-client';
import { registeredMetric } from '../metrics';
import type { Store } from '../repositories/store';
import type { KmsRegistry } from '../../kms-adapters/registry';
import { AuditSealEntity, type AuditSealKind } from '../../entities';
import { binding } from '../keys/binding';
import { uniqueViolation } from '../repositories/db-errors';
import { chainSql, readHead } from './chain-sql';
import { ROWS_PER_TURN, verifyAuditChain } from './verify';
import { newestAuthenticSeal } from './seal-newest';

type LogFn = (fields: Record<string, unknown>, message: string) => void;

/** Seconds since the newest KMS-authentic seal; grows without bound when sealing stops (alert on > 2× the interval). */
const lastSealAge = registeredMetric('crypto_server_audit_last_seal_age_seconds', () => new Gauge({ name: 'crypto_server_audit_last_seal_age_seconds', help: 'Seconds since the newest audit seal the KMS vouches for' }));

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
export async function storeSeal(store: Store, kms: KmsRegistry, kekUri: string, kind: AuditSealKind, seq: bigint, hash: string, announce = false): Promise<boolean> {
  const plain = Buffer.from(hash, 'hex');
  const sealedAt = new Date().toISOString();
  const envelope = await kms.wrap(kekUri, plain, binding.auditSeal(kind, seq.toString(), hash, sealedAt));
  try {
    await store.transaction(async (tx) => {
      await tx.manager.insert(AuditSealEntity, { kind, seq: seq.toString(), hash, envelope, sealedAt });
      // The anchor outside the database: forwarded to the SIEM like any event (`audit verify --anchor`).
      // It also moves the head, so an idle chain is still sealed every interval (a heartbeat).
      if (announce) await tx.audit.append({ actor: 'system:audit-seal', action: 'audit.sealed', outcome: 'success', detail: { seq: seq.toString(), hash } });
    });
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
export interface SealOptions {
  warn?: LogFn;
  /**
   * Also append an `audit.sealed` event (seq, hash) in the seal's transaction: the anchor the
   * forwarder carries out of the database. The periodic sealer and `audit seal` always do.
   */
  announce?: boolean;
}

export async function sealAuditHead(store: Store, kms: KmsRegistry, kekUri: string, o: SealOptions = {}): Promise<SealResult> {
  const ds = store.dataSource;
  const sql = chainSql(ds);
  // In a transaction of its own: on SQLite's one connection a plain read could see the head an
  // open transaction moved and may yet roll back. Rows up to a committed head never change.
  const head = await store.transaction((tx) => readHead(chainSql(tx.manager)));
  if (!head) throw new Error('audit_chain_head has no row: run `crypto-server migrate`');
  if (head.seq === 0n) return { sealed: false, seq: 0n, hash: head.hash, reason: 'the audit chain is empty' };
  const newest = await newestAuthenticSeal(sql, kms, head.seq, o.warn ?? (() => undefined));
  if (newest.beyondHead) {
    return { sealed: false, seq: head.seq, hash: head.hash, reason: `not sealed, the chain head was rewound: head at seq ${head.seq} but the KMS sealed seq ${newest.beyondHead.seq} (rows deleted)` };
  }
  const lastSealed = newest.seal?.seq;
  if (newest.seal && lastSealed === head.seq) {
    if (newest.seal.hash === head.hash) return { sealed: false, seq: head.seq, hash: head.hash, reason: `already sealed at seq ${lastSealed}` };
    return { sealed: false, seq: head.seq, hash: head.hash, reason: `not sealed, the chain head's hash differs from the KMS seal at seq ${lastSealed} (rows rewritten)` };
  }
  // Pages of one turn's rows: on SQLite a page read is one synchronous step as well (1,000 rows
  // held the event loop for 20 ms and more under load), and this runs in the serving process.
  const check = await verifyAuditChain(ds, kms, { since: lastSealed?.toString(), through: head.seq, pageSize: ROWS_PER_TURN });
  if (!check.ok) return { sealed: false, seq: head.seq, hash: head.hash, reason: `not sealed, the chain is broken: ${check.problem}` };
  const [row] = await sql.query(`SELECT hash FROM audit_events WHERE seq = ${sql.p(1)}`, [sql.seq(head.seq)]);
  if (!row || String(row.hash) !== head.hash) return { sealed: false, seq: head.seq, hash: head.hash, reason: `not sealed, the chain head does not match the row at seq ${head.seq}` };
  const sealed = await storeSeal(store, kms, kekUri, 'seal', head.seq, head.hash, o.announce);
  return sealed ? { sealed, seq: head.seq, hash: head.hash } : { sealed, seq: head.seq, hash: head.hash, reason: `already sealed at seq ${head.seq}` };
}

export interface SealerOptions {
  intervalS: number;
  kekUri: string;
  /** Where a failed or refused seal, an ignored seal row or a stale newest seal is reported. */
  warn: LogFn;
  /** A rewound head (tail deleted past a KMS seal): sealing stops until someone looks. */
  error?: LogFn;
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
          // Skip the turn when another process sealed recently — judged from an authentic seal only.
          const head = await store.transaction((tx) => readHead(chainSql(tx.manager)));
          const newest = head ? await newestAuthenticSeal(chainSql(store.dataSource), kms, head.seq, o.warn) : {};
          const last = newest.seal ? Date.parse(newest.seal.sealedAt) : undefined;
          if (last !== undefined) lastSealAge.set(Math.max(0, (Date.now() - last) / 1000));
          if (last !== undefined && Date.now() - last < o.intervalS * 800) return;
          const r = await sealAuditHead(store, kms, o.kekUri, { warn: o.warn, announce: true });
          if (r.sealed) lastSealAge.set(0);
          else if (r.reason?.includes('rewound')) (o.error ?? o.warn)({ seq: r.seq.toString() }, `audit seal: ${r.reason}`);
          else if (r.reason?.startsWith('not sealed')) o.warn({ seq: r.seq.toString() }, `audit seal: ${r.reason}`);
          const age = last === undefined ? undefined : Date.now() - last;
          if (!r.sealed && age !== undefined) lastSealAge.set(age / 1000); // the age the warning below judges
          if (!r.sealed && age !== undefined && age > o.intervalS * 2000) {
            o.warn({ seq: newest.seal?.seq.toString(), sealedAt: newest.seal?.sealedAt }, `audit seal: the newest authentic seal is older than twice the interval (${o.intervalS * 2} s)`);
          }
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
