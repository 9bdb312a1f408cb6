import type { Command } from 'commander';
import { withStore } from './with-store';

/** Lists per-user KEKs that were created but never used (a provisioning failed after creation). */
export async function listOrphanKeks(env: NodeJS.ProcessEnv, print: (line: string) => void): Promise<number> {
  return withStore(env, async (store) => {
    const rows = await store.repos.keks.byState('pending');
    for (const r of rows) print(`${r.uri}\t${r.ownerType ?? '-'}:${r.ownerId ?? '-'}\tcreated ${r.createdAt}`);
    if (rows.length === 0) print('no orphan KEKs');
    return rows.length;
  });
}

export function registerKeks(program: Command): void {
  const keks = program.command('keks').description('inspect the key-encryption keys this server created');
  keks
    .command('orphans')
    .description('list per-user KEKs created in the KMS but not used (safe to schedule for deletion in the KMS)')
    .action(async () => {
      await listOrphanKeks(process.env, console.log);
    });
}
