import type { Command } from 'commander';
import pino from 'pino';
import { withStore } from './with-store';
import { wholeNumber } from './options';
import { loadConfig } from '../config';
import { boot } from '../boot';
import { describeDatabase } from '../config/core';
import { rewrapEnvelopes, RewrapError, type RewrapSummary } from '../keks/rewrap';
import { envelopeStatus } from '../keks/status';
import { progressBar } from '../keks/progress';

/** Lists per-user KEKs that were created but never used (a provisioning failed after creation). */
export async function listOrphanKeks(env: NodeJS.ProcessEnv, print: (line: string) => void): Promise<number> {
  return withStore(env, async (store) => {
    const rows = await store.repos.keks.byState('pending');
    for (const r of rows) print(`${r.uri}\t${r.ownerType ?? '-'}:${r.ownerId ?? '-'}\tcreated ${r.createdAt}`);
    if (rows.length === 0) print('no orphan KEKs');
    return rows.length;
  });
}

export interface RewrapCommandOptions {
  to: string;
  from?: string;
  dryRun?: boolean;
  batch?: number;
}

/** Exit codes: 0 all moved, 1 rows failed or a KMS stopped the run, 2 refused to start, 130 interrupted. */
export async function rewrapCommand(
  env: NodeJS.ProcessEnv,
  print: (line: string) => void,
  o: RewrapCommandOptions,
  extra: { signal?: AbortSignal; progress?: (done: number, total: number) => void } = {},
): Promise<number> {
  const config = loadConfig(env);
  const deps = await boot(config, pino({ level: 'silent' }), { notice: print });
  try {
    if (await deps.store.hasPendingMigrations()) {
      print(`the database (${describeDatabase(config.database)}) is not migrated: run \`crypto-server migrate\` first`);
      return 2;
    }
    const summary = await rewrapEnvelopes(deps.store, deps.kms, {
      to: o.to,
      from: o.from,
      dryRun: o.dryRun,
      batch: o.batch,
      configuredKeks: [config.kms.kekUri, ...config.kms.previousKekUris],
      perUser: config.kms.kekMode === 'per-user',
      signal: extra.signal,
      progress: extra.progress,
    });
    printSummary(summary, o, print);
    if (summary.interrupted) return 130;
    return summary.stopped || summary.tables.some((t) => t.failed.length) ? 1 : 0;
  } catch (err) {
    if (err instanceof RewrapError) {
      print(err.message);
      return 2;
    }
    throw err;
  } finally {
    await deps.close();
  }
}

function printSummary(s: RewrapSummary, o: RewrapCommandOptions, print: (line: string) => void): void {
  for (const t of s.tables) {
    for (const f of t.failed) print(`failed: ${t.table} ${f.key}: ${f.reason}`);
  }
  for (const t of s.tables) {
    print(
      o.dryRun
        ? `${t.table}: ${t.pending} envelope(s) would move to ${o.to}`
        : `${t.table}: moved ${t.moved}${t.native ? ` (${t.native} re-encrypted inside the KMS)` : ''}, skipped ${t.skipped}, failed ${t.failed.length}`,
    );
  }
  if (o.dryRun) print('dry run: nothing was written and no key was opened');
  if (s.stopped) print(`stopped: ${s.stopped}`);
  if (s.interrupted) print('interrupted: the batch in progress was finished; run the same command again to resume');
}

export async function statusCommand(env: NodeJS.ProcessEnv, print: (line: string) => void): Promise<number> {
  return withStore(env, async (store, config) => {
    if (await store.hasPendingMigrations()) {
      print(`the database (${describeDatabase(config.database)}) is not migrated: run \`crypto-server migrate\` first`);
      return 2;
    }
    const lines = await envelopeStatus(store);
    print('table\tKEK\tkey version\tenvelopes');
    for (const l of lines) print(`${l.table}\t${l.kek}\t${l.keyVersion}\t${l.count}`);
    const byKek = new Map<string, number>();
    for (const l of lines) byKek.set(l.kek, (byKek.get(l.kek) ?? 0) + l.count);
    for (const [kek, n] of byKek) print(`total\t${kek}\t\t${n}${kek === config.kms.kekUri ? '\t(CS_KEK_URI)' : ''}`);
    if (lines.length === 0) print('no stored envelopes');
    return 0;
  });
}

export function registerKeks(program: Command): void {
  const keks = program.command('keks').description('inspect the key-encryption keys this server created, and move envelopes between them');
  keks
    .command('orphans')
    .description('list per-user KEKs created in the KMS but not used (safe to schedule for deletion in the KMS)')
    .action(async () => {
      await listOrphanKeks(process.env, console.log);
    });
  keks
    .command('status')
    .description('count the stored envelopes under each KEK and key version, per table (is an old KEK still in use?)')
    .action(async () => {
      process.exitCode = await statusCommand(process.env, console.log);
    });
  keks
    .command('rewrap')
    .description('move every stored envelope to another KEK (same or another KMS), online and resumable (docs/operations.md)')
    .requiredOption('--to <kek-uri>', 'the KEK to move to; must be CS_KEK_URI or in CS_PREVIOUS_KEK_URIS')
    .option('--from <kek-uri>', 'move only envelopes under this KEK (default: every KEK but --to)')
    .option('--dry-run', 'count what would move; open no key, write nothing')
    .option('--batch <n>', 'envelopes per transaction (default 200)', wholeNumber(1, 10_000))
    .action(async (o: RewrapCommandOptions) => {
      // Ctrl-C: finish the batch in progress (its rows commit or not as a whole), print, exit.
      const stop = new AbortController();
      const onSigint = () => {
        if (stop.signal.aborted) process.exit(130);
        console.error('\nstopping after the current batch (Ctrl-C again to quit at once)');
        stop.abort();
      };
      process.on('SIGINT', onSigint);
      try {
        process.exitCode = await rewrapCommand(process.env, console.log, o, { signal: stop.signal, progress: progressBar(process.stderr) });
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
