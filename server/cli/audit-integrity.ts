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
 * 3 the check could not run (database or KMS unavailable).
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

export async function auditVerify(env: NodeJS.ProcessEnv, out: Out, o: { since?: string } = {}): Promise<number> {
  return withStoreAndKms(env, async (store, kms) => {
    const r = await verifyAuditChain(store.dataSource, kms, { since: o.since, pageSize: 5000, progress: (seq, rows) => out.note(`verified ${rows} rows (seq ${seq})`) });
    if (r.rows >= 5000) out.note('\n');
    if (!r.ok) {
      out.print(`audit chain BROKEN: ${r.problem}`);
      return 1;
    }
    const range = r.rows ? ` (seq ${r.from}–${r.to})` : '';
    const from = r.checkpoint !== undefined ? `, starting after the prune checkpoint at seq ${r.checkpoint}` : '';
    out.print(`audit chain intact: ${r.rows} rows${range}, ${r.seals} seals verified${from}`);
    return 0;
  });
}

export async function auditSeal(env: NodeJS.ProcessEnv, out: Out): Promise<number> {
  return withStoreAndKms(env, async (store, kms, config) => {
    const r = await sealAuditHead(store, kms, config.kms.kekUri);
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
    .action((o: { since?: string }) => exitWith(() => auditVerify(process.env, out, o)));
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
