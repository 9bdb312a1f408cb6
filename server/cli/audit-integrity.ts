import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command, type CommanderError } from 'commander';
import { withStore } from './with-store';
import { describeFailure } from './failure';
import { buildRegistry, type KmsRegistry } from '../../kms-adapters/registry';
import type { Store } from '../repositories/store';
import type { Config } from '../config';
import { verifyAuditChain } from '../audit/verify';
import { sealAuditHead } from '../audit/seal';
import { pruneAudit } from '../audit/prune';

/**
 * `crypto-server audit verify|seal|prune` (docs/operations.md, "Audit integrity"). Exit codes:
 * 0 the chain verifies (or the seal/prune was done), 1 the chain is broken, 2 a usage mistake,
 * 3 the check could not run (database or KMS unavailable), 4 the chain verifies but its tail is not
 * proven by a recent seal (rows and seals deleted after an older seal look exactly like that).
 */

async function withStoreAndKms<T>(env: NodeJS.ProcessEnv, fn: (store: Store, kms: KmsRegistry, config: Readonly<Config>) => Promise<T>): Promise<T> {
  return withStore(env, async (store, config) => {
    const kms = await buildRegistry({ ...config.kms });
    try {
      return await fn(store, kms, config);
    } finally {
      await kms.close();
    }
  });
}

export interface Out {
  print: (line: string) => void;
  /** Progress and notes (stderr). */
  note: (line: string) => void;
}

export interface Anchor {
  seq: bigint;
  hash: string;
}

export interface VerifyCliOptions {
  since?: string;
  /** Seconds; default 2 × CS_AUDIT_SEAL_INTERVAL_S when sealing is on; 0 = no check. */
  maxSealAge?: number;
  anchor?: Anchor[];
  anchorsFile?: string;
}

export async function auditVerify(env: NodeJS.ProcessEnv, out: Out, o: VerifyCliOptions = {}): Promise<number> {
  const anchors = [...(o.anchor ?? []), ...(o.anchorsFile === undefined ? [] : anchorsFromFile(o.anchorsFile))];
  return withStoreAndKms(env, async (store, kms, config) => {
    const intervalS = config.auditIntegrity.sealIntervalS;
    const maxSealAgeS = o.maxSealAge ?? (intervalS > 0 ? 2 * intervalS : 0);
    const r = await verifyAuditChain(store.dataSource, kms, {
      since: o.since,
      pageSize: 5000,
      progress: (seq, rows) => out.note(`verified ${rows} rows (seq ${seq})`),
      maxSealAgeS: maxSealAgeS > 0 ? maxSealAgeS : undefined,
      sealIntervalS: intervalS,
      anchors,
    });
    if (r.rows >= 5000) out.note('\n');
    if (r.unproven) {
      out.print(`audit chain UNPROVEN: ${r.problem}`);
      return 4;
    }
    if (!r.ok) {
      out.print(`audit chain BROKEN: ${r.problem}`);
      return 1;
    }
    const range = r.rows ? ` (seq ${r.from}–${r.to})` : '';
    const from = r.checkpoint !== undefined ? `, starting after the prune checkpoint at seq ${r.checkpoint}` : '';
    const anchored = r.anchors ? `, ${r.anchors} anchors found` : '';
    out.print(`audit chain intact: ${r.rows} rows${range}, ${r.seals} seals verified${anchored}${from}`);
    return 0;
  });
}

export async function auditSeal(env: NodeJS.ProcessEnv, out: Out): Promise<number> {
  return withStoreAndKms(env, async (store, kms, config) => {
    const r = await sealAuditHead(store, kms, config.kms.kekUri, { announce: true, warn: (_f, m) => console.error(`crypto-server: ${m}`) });
    if (r.sealed) out.print(`sealed the audit chain at seq ${r.seq} (hash ${r.hash}) under ${config.kms.kekUri}`);
    else out.print(r.reason ?? 'nothing sealed');
    return r.reason?.startsWith('not sealed') ? 1 : 0;
  });
}

export async function auditPrune(env: NodeJS.ProcessEnv, out: Out, o: { before: string }): Promise<number> {
  return withStoreAndKms(env, async (store, kms, config) => {
    const r = await pruneAudit(store, kms, config.kms.kekUri, o.before);
    if (r.reason) out.print(r.reason);
    if (r.deleted > 0 || !r.reason) out.print(`pruned ${r.deleted} audit rows; the chain now starts after the KMS-sealed checkpoint at seq ${r.checkpoint}`);
    return r.reason?.startsWith('not pruned') ? 1 : 0;
  });
}

const sinceArg = (v: string): string => {
  if (/^\d{1,18}$/.test(v)) return v;
  if (/^\d{4}-\d{2}-\d{2}/.test(v) && !Number.isNaN(Date.parse(v))) return new Date(v).toISOString();
  throw new InvalidArgumentError('must be a seq (a whole number) or an ISO 8601 time (2026-12-01T10:00:00Z)');
};

const anchorArg = (v: string, prev: Anchor[] = []): Anchor[] => {
  const m = /^(\d{1,18}):([0-9a-f]{64})$/.exec(v);
  if (!m) throw new InvalidArgumentError('must be <seq>:<hash> (a whole number, a colon, 64 lower-case hex digits)');
  return [...prev, { seq: BigInt(m[1]), hash: m[2] }];
};

const secondsArg = (v: string): number => {
  if (!/^\d{1,9}$/.test(v)) throw new InvalidArgumentError('must be a whole number of seconds (0 = no check)');
  return Number(v);
};

/**
 * Anchors from forwarded events (JSON lines as the `file:` sink writes them): the newest line's own
 * (seq, hash) — a chain that still holds it holds every forwarded row before it — and the newest
 * `audit.sealed` event's sealed (seq, hash). Lines that are not events (a torn last line) are skipped.
 */
function anchorsFromFile(path: string): Anchor[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--anchors-file: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let newest: Anchor | undefined;
  let sealed: Anchor | undefined;
  for (const line of text.split('\n')) {
    let e: { seq?: unknown; hash?: unknown; action?: unknown; detail?: { seq?: unknown; hash?: unknown } | null };
    try {
      e = JSON.parse(line);
    } catch {
      continue;
    }
    const a = anchorOf(e?.seq, e?.hash);
    if (a && (!newest || a.seq > newest.seq)) newest = a;
    const s = e?.action === 'audit.sealed' ? anchorOf(e.detail?.seq, e.detail?.hash) : undefined;
    if (s && (!sealed || s.seq > sealed.seq)) sealed = s;
  }
  if (!newest) throw new UsageError(`--anchors-file: no audit event (a JSON line with seq and hash) in ${path}`);
  return sealed ? [sealed, newest] : [newest];
}

function anchorOf(seq: unknown, hash: unknown): Anchor | undefined {
  const s = typeof seq === 'number' || typeof seq === 'string' ? String(seq) : '';
  return /^\d{1,18}$/.test(s) && typeof hash === 'string' && /^[0-9a-f]{64}$/.test(hash) ? { seq: BigInt(s), hash } : undefined;
}

/** A usage mistake found after parsing (an unreadable anchors file): exit 2. */
class UsageError extends Error {}

const beforeArg = (v: string): string => {
  if (!/^\d{4}-\d{2}-\d{2}/.test(v) || Number.isNaN(Date.parse(v))) throw new InvalidArgumentError('must be an ISO 8601 time (2026-06-01 or 2026-06-01T00:00:00Z)');
  const t = new Date(v);
  if (t.getTime() > Date.now()) throw new InvalidArgumentError('must be in the past');
  return t.toISOString();
};

async function exitWith(fn: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await fn();
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`crypto-server: ${err.message}`);
      process.exitCode = 2;
      return;
    }
    console.error(`crypto-server: ${describeFailure(err)}`);
    process.exitCode = 3;
  }
}

const out: Out = {
  print: (l) => console.log(l),
  // Progress only on a terminal, overwritten in place; a script reads the result line alone.
  note: (l) => {
    if (process.stderr.isTTY) process.stderr.write(`\r${l}\x1b[K`);
  },
};

/** A usage mistake (unknown flag, bad value) exits 2, like the other audit commands. */
const usageExit2 = (e: CommanderError) => process.exit(e.exitCode === 0 ? 0 : 2);

/** Adds verify, seal and prune to the `audit` command group. */
export function addAuditIntegrityCommands(audit: Command): void {
  audit
    .command('verify')
    .exitOverride(usageExit2)
    .description('check every audit row hash, every link and every KMS seal; report the first break (exit 1)')
    .option('--since <seq|time>', 'start at this seq or at the first row at or after this ISO 8601 time (that row\'s link is taken on trust)', sinceArg)
    .option('--max-seal-age <seconds>', 'report UNPROVEN (exit 4) when the newest KMS seal is older than this (default: 2 × CS_AUDIT_SEAL_INTERVAL_S; 0 = no check)', secondsArg)
    .option('--anchor <seq:hash>', 'a (seq, hash) recorded outside the database, e.g. an audit.sealed event in the SIEM; the chain must still hold it (repeatable)', anchorArg)
    .option('--anchors-file <path>', 'forwarded events as JSON lines (the file: sink\'s format): the chain must still hold the newest one and the newest audit.sealed seal')
    .action((o: VerifyCliOptions) => exitWith(() => auditVerify(process.env, out, o)));
  audit
    .command('seal')
    .exitOverride(usageExit2)
    .description('have the KMS seal the current head of the audit chain (after checking the rows since the last seal)')
    .action(() => exitWith(() => auditSeal(process.env, out)));
  audit
    .command('prune')
    .exitOverride(usageExit2)
    .description('delete audit rows older than a time, keeping a KMS-sealed checkpoint so the rest still verifies')
    .requiredOption('--before <time>', 'ISO 8601 time; rows before it go', beforeArg)
    .action((o: { before: string }) => exitWith(() => auditPrune(process.env, out, o)));
}
