import type { Command } from 'commander';
import { withStore } from './with-store';
import { instancesSummary, processLabel, type InstancesSummary } from '../instances/summary';

/** `crypto-server instances`: the serving processes (workers of every replica) seen in the last 5 minutes. */
export async function instancesCommand(env: NodeJS.ProcessEnv, print: (line: string) => void, o: { json?: boolean }, now = new Date()): Promise<number> {
  return withStore(env, async (store) => {
    const s: InstancesSummary = await instancesSummary(store, now);
    if (o.json) {
      print(JSON.stringify(s));
      return 0;
    }
    for (const r of s.recent) print(`${r.hostname}\t${processLabel(r)}\t${r.version}\tup since ${r.started_at}\tlast seen ${r.seen_at}\t${r.id}`);
    if (s.recent.length === 0) print('no instance seen in the last 5 minutes');
    print(`${s.recent.length} seen in the last 5 minutes; ${s.notSeenRecently} more seen in the last 24 h but not since (stopped without a clean shutdown, or crashed)`);
    if (s.versions.length > 1) print(`versions differ: ${s.versions.join(', ')} (a rolling upgrade in progress?)`);
    return 0;
  });
}

export function registerInstances(program: Command): void {
  program
    .command('instances')
    .description('serving processes (each worker of each replica) seen in the last 5 minutes, with their versions')
    .option('--json', 'print the list as JSON')
    .action(async (o: { json?: boolean }) => {
      process.exitCode = await instancesCommand(process.env, console.log, o);
    });
}
