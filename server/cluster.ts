/**
 * `serve` with CS_WORKERS > 1: one primary process and N worker processes sharing one port
 * (node:cluster). The primary checks the configuration and applies migrations once, forks the
 * workers, prints start-up output once, restarts a worker that dies (with back-off), answers
 * workers' /metrics requests with figures aggregated over all workers, and on SIGTERM/SIGINT lets
 * every worker finish its in-flight requests before it exits itself. It serves no requests.
 * Everything a request depends on is in the database, so workers share state as replicas do.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Config } from './config';
import type { Logger } from './log';
import { boot } from './boot';
import { ConfigError } from './errors';
import { describeFailure } from './cli/failure';

/** Messages between primary and workers (IPC); `cs:` keeps them apart from prom-client's own. */
export type WorkerMessage =
  | { type: 'cs:ready'; url: string }
  | { type: 'cs:failed'; message: string; exitCode: number }
  | { type: 'cs:metrics-request'; id: number };
export type PrimaryMessage = { type: 'cs:metrics'; id: number; text?: string; error?: string };

/** A worker that lived this long counts as started well: the next death restarts it at once. */
const STABLE_MS = 30_000;
/** Restart delays after consecutive early deaths; beyond the last, the primary gives up. */
const BACKOFF_MS = [0, 1000, 2000, 4000, 8000, 16_000];

export interface PrimaryOptions {
  workers: number;
  print: (line: string) => void;
  /** The start-up lines, once every worker listens (the URL is the one the workers bound). */
  startupLines: (url: string) => string[];
}

/**
 * Runs the primary until the cluster has stopped; resolves with the process exit code
 * (0 after a signal, the workers' code if they cannot start). Rejects if the configuration,
 * the KMS or the migrations fail before any worker is forked.
 */
export async function runPrimary(config: Readonly<Config>, log: Logger, opts: PrimaryOptions): Promise<number> {
  // Once, before forking: a missing master key is created, pending migrations applied (under the
  // migration lock), and a bad setting stops here with one message instead of one per worker.
  const deps = await boot(config, log, { migrate: config.database.migrateOnStart, notice: opts.print });
  await deps.close();

  const metrics = new AggregatorRegistry();
  const started = new Map<Worker, number>();
  const ready = new Set<Worker>();
  let everReady = false;
  let failures = 0;
  let stopping = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let pendingRestarts = 0;

  return new Promise<number>((resolve) => {
    let exitCode = 0;
    const finishIfEmpty = () => {
      if (stopping && Object.keys(cluster.workers ?? {}).length === 0) {
        for (const sig of ['SIGINT', 'SIGTERM'] as const) process.off(sig, onSignal);
        cluster.removeAllListeners('exit');
        cluster.removeAllListeners('message');
        resolve(exitCode);
      }
    };
    const stopAll = (code: number) => {
      if (stopping) return;
      stopping = true;
      exitCode = code;
      clearTimeout(restartTimer);
      for (const w of Object.values(cluster.workers ?? {})) if (w && !w.isDead()) w.process.kill('SIGTERM');
      finishIfEmpty();
    };
    const onSignal = () => stopAll(0);
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, onSignal);

    const fork = () => started.set(cluster.fork(), Date.now());

    const failedAtStart = new Map<Worker, { message: string; exitCode: number }>();
    cluster.on('message', (worker: Worker, msg: WorkerMessage) => {
      if (msg?.type === 'cs:ready') {
        ready.add(worker);
        if (!everReady && ready.size === opts.workers) {
          everReady = true;
          for (const line of opts.startupLines(msg.url)) opts.print(line);
        }
      } else if (msg?.type === 'cs:failed') {
        failedAtStart.set(worker, { message: msg.message, exitCode: msg.exitCode });
      } else if (msg?.type === 'cs:metrics-request') {
        const reply = (m: PrimaryMessage) => worker.isConnected() && worker.send(m);
        metrics.clusterMetrics().then(
          (text) => reply({ type: 'cs:metrics', id: msg.id, text }),
          (err: Error) => reply({ type: 'cs:metrics', id: msg.id, error: err.message }),
        );
      }
    });

    cluster.on('exit', (worker: Worker, code: number | null, signal: string | null) => {
      const lived = Date.now() - (started.get(worker) ?? 0);
      const wasReady = ready.has(worker);
      started.delete(worker);
      ready.delete(worker);
      const failed = failedAtStart.get(worker);
      failedAtStart.delete(worker);
      if (stopping) return finishIfEmpty();
      if (!everReady) {
        // The first start failed (port in use, database gone...): the same cause would stop every
        // worker, so say it once and stop.
        if (failed) console.error(`crypto-server: ${failed.message}`);
        else console.error(`crypto-server: a worker exited during start-up (${signal ?? `code ${code}`})`);
        return stopAll(failed?.exitCode ?? 1);
      }
      failures = wasReady && lived >= STABLE_MS ? 0 : failures + 1;
      if (failures >= BACKOFF_MS.length) {
        console.error(`crypto-server: workers keep failing (${failures} in a row; last: ${failed?.message ?? signal ?? `code ${code}`}); stopping`);
        return stopAll(1);
      }
      const delay = BACKOFF_MS[failures]!;
      log.warn({ pid: worker.process.pid, code, signal, restartInMs: delay, reason: failed?.message }, 'worker exited; starting a replacement');
      pendingRestarts++;
      const restart = () => {
        restartTimer = undefined;
        if (stopping) return;
        for (; pendingRestarts > 0; pendingRestarts--) fork();
      };
      if (!restartTimer) restartTimer = setTimeout(restart, delay);
    });

    for (let i = 0; i < opts.workers; i++) fork();
  });
}

/** In a worker: reports start-up to the primary and stops gracefully when told (or orphaned). */
export async function runWorker(start: () => Promise<{ url: string; stop: () => Promise<void> }>): Promise<void> {
  // prom-client answers the primary's requests for this worker's metrics once one exists here.
  new AggregatorRegistry();
  const send = (m: WorkerMessage) => new Promise<void>((resolve) => (process.connected ? process.send!(m, undefined, {}, () => resolve()) : resolve()));
  let running: { url: string; stop: () => Promise<void> };
  try {
    running = await start();
  } catch (err) {
    const exitCode = err instanceof ConfigError ? 2 : 1;
    await send({ type: 'cs:failed', message: describeFailure(err), exitCode });
    process.exit(exitCode);
  }
  const stop = () => {
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, stop);
  // The primary is gone (killed): nothing restarts or signals this worker any more.
  process.once('disconnect', stop);
  await send({ type: 'cs:ready', url: running.url });
}

let metricsRequests = 0;
const pendingMetrics = new Map<number, (m: PrimaryMessage) => void>();

/** In a worker: every worker's metrics, aggregated by the primary (prom-client AggregatorRegistry). */
export function clusterMetrics(timeoutMs = 5000): Promise<string> {
  if (pendingMetrics.size === 0) process.on('message', onPrimaryMessage);
  const id = ++metricsRequests;
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => done({ type: 'cs:metrics', id, error: 'the primary did not answer' }), timeoutMs);
    const done = (m: PrimaryMessage) => {
      clearTimeout(timer);
      pendingMetrics.delete(id);
      if (pendingMetrics.size === 0) process.off('message', onPrimaryMessage);
      if (m.text !== undefined) resolve(m.text);
      else reject(new Error(`cluster metrics: ${m.error}`));
    };
    pendingMetrics.set(id, done);
    process.send!({ type: 'cs:metrics-request', id } satisfies WorkerMessage);
  });
}

function onPrimaryMessage(m: PrimaryMessage): void {
  if (m?.type === 'cs:metrics') pendingMetrics.get(m.id)?.(m);
}

export const isWorker = () => cluster.isWorker;
