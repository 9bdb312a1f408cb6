import { randomUUID } from 'node:crypto';
import cluster from 'node:cluster';
import { hostname } from 'node:os';
import type { Store } from '../repositories/store';
import type { Logger } from '../log';
import { InstancesRepository, type InstanceRow } from './repository';
import { packageVersion } from './version';

export const HEARTBEAT_MS = 30_000;
/** Rows not seen for this long are pruned (by any instance's heartbeat). */
export const PRUNE_AFTER_MS = 24 * 3_600_000;

export interface HeartbeatOptions {
  intervalMs?: number;
  now?: () => Date;
}

export interface Heartbeat {
  readonly id: string;
  /** One beat now (start-up does one; tests call it). Never rejects. */
  beat: () => Promise<void>;
  /** Stops the timer and removes this process's row (graceful shutdown). Never rejects. */
  stop: () => Promise<void>;
}

/**
 * Records this serving process in server_instances at start and every 30 s, so the console's
 * Status page and `crypto-server instances` can list the workers and replicas alive. A failing
 * write is logged at debug only: the heartbeat must never affect serving.
 */
export function startHeartbeat(store: Store, log: Logger, opts: HeartbeatOptions = {}): Heartbeat {
  const now = opts.now ?? (() => new Date());
  const repo = new InstancesRepository(store);
  const started = now().toISOString();
  const row: Omit<InstanceRow, 'seen_at'> = {
    id: randomUUID(),
    hostname: hostname().slice(0, 255),
    pid: process.pid,
    worker: cluster.isWorker && cluster.worker ? cluster.worker.id : null,
    version: packageVersion().slice(0, 64),
    started_at: started,
  };
  let stopped = false;
  let inFlight: Promise<void> | undefined;
  // A beat still waiting on a slow database is not joined by another: one pool slot at most.
  const beat = () =>
    (inFlight ??= (async () => {
      if (stopped) return;
      const at = now();
      try {
        await repo.beat({ ...row, seen_at: at.toISOString() });
        await repo.prune(new Date(at.getTime() - PRUNE_AFTER_MS).toISOString());
      } catch (err) {
        log.debug({ err: (err as Error).message }, 'instance heartbeat not recorded');
      }
    })().finally(() => (inFlight = undefined)));
  void beat();
  const timer = setInterval(() => void beat(), opts.intervalMs ?? HEARTBEAT_MS);
  timer.unref();
  return {
    id: row.id,
    beat,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await inFlight;
      await repo.remove(row.id).catch((err: unknown) => log.debug({ err: (err as Error).message }, 'instance row not removed at shutdown'));
    },
  };
}
