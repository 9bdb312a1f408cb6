import type { Command } from 'commander';
import { createServer, type Server } from 'node:http';
import { loadConfig } from '../config';
import { describeDatabase } from '../config/core';
import { describeSignIn } from '../config/auth';
import { createLogger } from '../log';
import { boot } from '../boot';
import { createRequestListener } from '../http/app';
import { ConfigError } from '../errors';
import { startScimWorkers } from '../../scim/workers';
import { startAuditForwarding } from '../audit/forward';
import { startAuditSealing } from '../audit/seal-schedule';
import type { Config } from '../config';
import { runPrimary, runWorker, isWorker } from '../cluster';
import { availableParallelism } from 'node:os';
import { createTlsServer } from '../http/tls';
import { CLOSE_BOUND_MS, closeWithin, drainable, onShutdownSignals } from '../shutdown';
import { startHeartbeat } from '../instances/heartbeat';

export interface Running {
  server: Server;
  url: string;
  /** Graceful: drains requests (CS_SHUTDOWN_TIMEOUT_MS), then closes; false if closing failed or timed out. */
  stop: () => Promise<boolean>;
  /** Cuts the requests still in flight (a second signal). */
  force: () => void;
}

/** Starts the HTTP server; resolves once listening. Prints what it created and where. */
export async function serve(env: NodeJS.ProcessEnv = process.env, print: (line: string) => void = console.log): Promise<Running> {
  const config = loadConfig(env);
  const log = createLogger(config.log.level);
  const deps = await boot(config, log, { migrate: config.database.migrateOnStart, notice: print });
  const app = createRequestListener(deps);
  const server = await new Promise<Server>((resolve, reject) => {
    const t = config.server;
    // Expired header/request timers are swept on this interval, so it bounds how late they fire.
    const options = { connectionsCheckingInterval: Math.min(1000, t.headersTimeoutMs / 2) };
    // A client that connects and never completes the TLS handshake gets no longer than one that never sends headers.
    const s = t.tls ? (createTlsServer(t.tls, { ...options, handshakeTimeout: t.headersTimeoutMs }, app, log) as unknown as Server) : createServer(options, app);
    s.headersTimeout = t.headersTimeoutMs;
    s.requestTimeout = t.requestTimeoutMs; // whole request, body included: a slow upload gets a 408
    s.keepAliveTimeout = t.keepAliveTimeoutMs;
    // A socket that says nothing for this long is closed, whatever state it is in.
    s.setTimeout(t.requestTimeoutMs);
    s.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, config.server.host, config.server.port)));
    s.listen(config.server.port, config.server.host, () => resolve(s));
  }).catch(async (err) => {
    await deps.close();
    throw err;
  });
  const workers = startScimWorkers(deps);
  const forwarding = startAuditForwarding(deps.store, config.audit.forward, log);
  const sealing = startAuditSealing(deps);
  const heartbeat = startHeartbeat(deps.store, log); // server_instances: the console's "instances seen recently"
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.server.port;
  const url = `${config.server.tls ? 'https' : 'http'}://${config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host}:${port}`;
  for (const line of startupLines(config, url)) print(line);
  const drain = drainable(server);
  let stopping: Promise<boolean> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      const { cut } = await drain.drain(config.server.shutdownTimeoutMs);
      if (cut > 0) log.warn({ cut, shutdownTimeoutMs: config.server.shutdownTimeoutMs }, 'shutdown: requests still running at CS_SHUTDOWN_TIMEOUT_MS were cut');
      // Requests are done: background work, then KMS sessions and the pool (after the audit batch).
      const closed = await closeWithin(async () => {
        await heartbeat.stop();
        await workers.stop();
        await forwarding?.stop();
        await sealing.stop();
        await deps.close();
      }, CLOSE_BOUND_MS, log);
      if (!closed) log.error({ boundMs: CLOSE_BOUND_MS }, 'shutdown: closing KMS sessions and the database did not finish in time');
      return closed;
    })());
  return { server, url, stop, force: drain.force };
}

/** What `serve` prints once it listens (once for the whole cluster). */
function startupLines(config: Readonly<Config>, url: string, workers?: string): string[] {
  const db = describeDatabase(config.database);
  return [`Crypto Server listening on ${url} (${workers ? `${workers}; ` : ''}database: ${db}; KEK: ${config.kms.kekUri}; user keys: ${config.keys.userKeyAlgorithm})`, describeSignIn(config.auth)];
}

/**
 * CS_WORKERS, or one worker per CPU — except on SQLite: its one writer is shared through a file
 * lock that a waiting process polls with its event loop blocked, so more processes measured slower.
 */
export function workerCount(config: Readonly<Config>, cpus = availableParallelism()): number {
  return config.server.workers ?? (config.database.type === 'sqlite' ? 1 : cpus);
}

export const SQLITE_ONE_WORKER_NOTE = 'one worker process: on SQLite CS_WORKERS defaults to 1 (a single writer; more processes are not faster); PostgreSQL/MariaDB default to one per CPU';

function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  if (err.code === 'EADDRINUSE') return new ConfigError(`CS_PORT: port ${port} on CS_HOST ${host} is already in use; stop the other process or choose another port`);
  if (err.code === 'EACCES') return new ConfigError(`CS_PORT: no permission to listen on port ${port} (ports below 1024 need privileges; use a higher port behind your proxy)`);
  if (err.code === 'EADDRNOTAVAIL') return new ConfigError(`CS_HOST: ${host} is not an address of this machine`);
  return err;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('start the HTTP server (configuration from CS_* environment variables; see docs/configuration.md)')
    .action(async () => {
      if (isWorker()) {
        // Start-up output and failures are reported by the primary, once for all workers.
        // One graceful stop per worker: on Ctrl-C a worker gets SIGINT and the primary's SIGTERM.
        return runWorker(() =>
          serve(process.env, () => undefined).then((r) => ({
            url: r.url,
            stop: () =>
              r.stop().then((closed) => {
                if (!closed) throw new Error('closing did not finish'); // the worker exits 1
              }),
          })),
        );
      }
      const config = loadConfig();
      const workers = workerCount(config);
      if (workers > 1) {
        const log = createLogger(config.log.level);
        const code = await runPrimary(config, log, { workers, print: console.log, startupLines: (url) => startupLines(config, url, `${workers} workers`) });
        process.exit(code);
      }
      // Handlers before boot: a SIGTERM between "listening" and their installation used to kill the
      // process outright (exit by signal, nothing flushed). Before it serves, there is nothing to drain.
      let running: Running | undefined;
      onShutdownSignals(() => (running ? running.stop() : Promise.resolve(true)), () => running?.force());
      running = await serve();
      if (config.server.workers === undefined && config.database.type === 'sqlite') console.log(SQLITE_ONE_WORKER_NOTE);
    });
}
