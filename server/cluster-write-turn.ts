/**
 * The SQLite write turn across the workers of one `serve` (issue 10). Workers on one SQLite file
 * take its write lock in turn; a worker that found it held used to wait in SQLite's busy handler,
 * which sleeps the thread — the worker's event loop — 1, 2, 5, 10… ms at a time while the other
 * worker held the lock for well under a millisecond. Instead the primary hands out one write token,
 * first come first served, over IPC: a worker takes it before a write transaction on the file and
 * gives it back after commit, and waits for it with its event loop free. The lock itself is still
 * SQLite's: busy_timeout stays the fallback for other processes (CLI, backup, a sqlite3 shell).
 *
 * A worker keeps the token while nobody else asks for it (its next write starts at once); when the
 * primary says another worker waits, it finishes the writes that already hold it, then passes it on.
 * The primary frees a dead worker's token (its SQLite locks died with the process).
 */
import cluster, { type Worker } from 'node:cluster';
import type { Store, WriteTurn } from './repositories/store';
import type { DatabaseConfig } from './config/core';
import { DEFAULT_POOL } from './repositories/pool-guard';

export type TurnRequest = { type: 'cs:turn-acquire' } | { type: 'cs:turn-release' };
export type TurnNotice = { type: 'cs:turn-grant' } | { type: 'cs:turn-wanted' };

export const isTurnRequest = (m: { type?: unknown } | undefined): m is TurnRequest => m?.type === 'cs:turn-acquire' || m?.type === 'cs:turn-release';

/** In the primary: one token, granted in the order asked. */
export class WriteTurnArbiter<W extends Pick<Worker, 'send' | 'isConnected'> = Worker> {
  private holder?: W;
  private readonly queue: W[] = [];

  onMessage(worker: W, msg: TurnRequest): void {
    if (msg.type === 'cs:turn-acquire') {
      if (this.holder === undefined) return this.grant(worker);
      if (this.holder === worker || this.queue.includes(worker)) return;
      this.queue.push(worker);
      if (this.queue.length === 1) this.tell(this.holder, { type: 'cs:turn-wanted' });
    } else if (this.holder === worker) {
      this.next();
    }
  }

  /** A worker exited: its place in the queue goes, and the token if it held it. */
  onExit(worker: W): void {
    const i = this.queue.indexOf(worker);
    if (i >= 0) this.queue.splice(i, 1);
    if (this.holder === worker) this.next();
  }

  /** For tests and debugging. */
  get state(): { holder?: W; waiting: number } {
    return { holder: this.holder, waiting: this.queue.length };
  }

  private next(): void {
    this.holder = undefined;
    const w = this.queue.shift();
    if (w) this.grant(w);
  }

  private grant(worker: W): void {
    this.holder = worker;
    if (!this.tell(worker, { type: 'cs:turn-grant' })) return this.next();
    if (this.queue.length > 0) this.tell(worker, { type: 'cs:turn-wanted' });
  }

  private tell(worker: W, m: TurnNotice): boolean {
    if (!worker.isConnected()) return false;
    worker.send(m);
    return true;
  }
}

/** In the primary: answers the workers' turn requests and frees a dead worker's token, until the cluster stops. */
export function serveWriteTurns(): WriteTurnArbiter {
  const arbiter = new WriteTurnArbiter();
  cluster.on('message', (worker: Worker, msg: { type?: unknown }) => {
    if (isTurnRequest(msg)) arbiter.onMessage(worker, msg);
  });
  cluster.on('exit', (worker: Worker) => arbiter.onExit(worker));
  return arbiter;
}

/**
 * In a worker of `serve` on a SQLite file: the store's writes take the cluster's turn. Nothing
 * elsewhere (one process; PostgreSQL/MariaDB lock rows, not the file; in memory nothing is shared).
 */
export function joinWriteTurns(store: Store, db: DatabaseConfig): void {
  if (!cluster.isWorker || db.type !== 'sqlite' || db.path === ':memory:' || db.path === '') return;
  store.crossProcessTurn = workerWriteTurn((db.pool ?? DEFAULT_POOL).acquireTimeoutMs);
}

/** IPC of a worker: process.send / process.on('message'), injectable for tests. */
export interface TurnChannel {
  send(m: TurnRequest): void;
  onNotice(listener: (m: TurnNotice) => void): void;
  connected(): boolean;
}

const processChannel: TurnChannel = {
  send: (m) => void process.send!(m),
  onNotice: (listener) =>
    process.on('message', (m: { type?: unknown }) => {
      if (m?.type === 'cs:turn-grant' || m?.type === 'cs:turn-wanted') listener(m as TurnNotice);
    }),
  connected: () => process.connected,
};

/**
 * In a worker: the store's cross-process turn. `acquire` resolves with the release function once
 * this worker holds the token; after `waitMs` without it, it resolves anyway and the write falls
 * back to SQLite's own lock wait (busy_timeout) rather than failing.
 */
export function workerWriteTurn(waitMs: number, channel: TurnChannel = processChannel): WriteTurn {
  let held = false;
  let asked = false;
  let wanted = false;
  let active = 0;
  const waiting = new Set<() => void>();

  const ask = () => {
    if (asked || held || !channel.connected()) return;
    asked = true;
    channel.send({ type: 'cs:turn-acquire' });
  };
  const pass = () => {
    held = false;
    wanted = false;
    if (channel.connected()) channel.send({ type: 'cs:turn-release' });
    if (waiting.size > 0) ask();
  };
  const release = () => {
    active--;
    if (active === 0 && held && wanted) pass();
  };
  const noop = () => undefined;

  channel.onNotice((m) => {
    if (m.type === 'cs:turn-wanted') {
      // Sent while this worker held the token; one that crossed its release is stale.
      if (!held) return;
      wanted = true;
      if (held && active === 0) pass();
      return;
    }
    asked = false;
    held = true;
    const ready = [...waiting];
    waiting.clear();
    for (const go of ready) go();
    if (active === 0 && wanted) pass();
  });

  return {
    acquire: () => {
      if (!channel.connected()) return Promise.resolve(noop);
      if (held && !wanted) {
        active++;
        return Promise.resolve(once(release));
      }
      return new Promise<() => void>((resolve) => {
        const go = () => {
          clearTimeout(timer);
          active++;
          resolve(once(release));
        };
        const timer = setTimeout(() => {
          waiting.delete(go);
          resolve(noop);
        }, waitMs).unref();
        waiting.add(go);
        ask();
      });
    },
  };
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      fn();
    }
  };
}
