import { InstancesRepository, type InstanceRow } from './repository';
import type { Store } from '../repositories/store';
import { PRUNE_AFTER_MS } from './heartbeat';

/** Seen within this window counts as alive: a heartbeat is every 30 s, so ten beats were missed. */
export const RECENT_MS = 5 * 60_000;

export interface InstancesSummary {
  /** Seen in the last 5 minutes, most recently seen first. */
  recent: InstanceRow[];
  /** Seen in the last 24 h but not in the last 5 minutes: stopped without removing their row, or crashed. */
  notSeenRecently: number;
  /** Versions among the recent instances, sorted; more than one means a rolling upgrade (or a stuck replica). */
  versions: string[];
}

/** What the console's Status page and `crypto-server instances` show. */
export async function instancesSummary(store: Store, now = new Date()): Promise<InstancesSummary> {
  const rows = await new InstancesRepository(store).seenSince(new Date(now.getTime() - PRUNE_AFTER_MS).toISOString());
  const cutoff = new Date(now.getTime() - RECENT_MS).toISOString();
  const recent = rows.filter((r) => r.seen_at >= cutoff);
  return { recent, notSeenRecently: rows.length - recent.length, versions: [...new Set(recent.map((r) => r.version))].sort() };
}

/** "pid 123, worker 2" / "pid 123": how a serving process is named in lists. */
export const processLabel = (r: InstanceRow): string => `pid ${r.pid}${r.worker === null ? '' : `, worker ${r.worker}`}`;
