/**
 * Graceful shutdown of one serving process (SIGTERM/SIGINT): stop accepting connections, let the
 * requests in flight finish within CS_SHUTDOWN_TIMEOUT_MS, then cut what is left; only then close
 * the background workers, the KMS sessions and the database pool (which first waits for the audit
 * batch in flight), so every answered request's audit row is committed.
 */
import type { Server, ServerResponse } from 'node:http';
import type { Logger } from './log';

/** Bound on closing KMS sessions and the pool after the requests are done; beyond it we exit anyway. */
export const CLOSE_BOUND_MS = 5000;

export interface Drainable {
  /** Starts draining; resolves once every connection is closed (finished, or cut at the bound). */
  drain: (timeoutMs: number) => Promise<{ cut: number }>;
  /** Cuts every connection now (a second signal). */
  force: () => void;
}

/**
 * Tracks the server's open requests from now on so that, once draining, a keep-alive connection
 * closes as soon as its response is sent and a request arriving on one is answered with
 * `Connection: close` instead of being dropped.
 */
export function drainable(server: Server): Drainable {
  const inFlight = new Set<ServerResponse>();
  let draining = false;
  // Before the app's own listener, so the header is set before any handler can send headers.
  server.prependListener('request', (_req, res: ServerResponse) => {
    if (draining) res.setHeader('Connection', 'close');
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
    res.once('finish', () => {
      if (draining) setImmediate(() => server.closeIdleConnections());
    });
  });
  let forceNow: (() => void) | undefined;
  let closed: Promise<{ cut: number }> | undefined;
  return {
    force: () => forceNow?.(),
    drain: (timeoutMs) =>
      (closed ??= new Promise((resolve) => {
        draining = true;
        for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
        let cut = 0;
        const timer = setTimeout(() => forceNow!(), timeoutMs);
        forceNow = () => {
          cut = inFlight.size;
          server.closeAllConnections();
        };
        server.close(() => {
          clearTimeout(timer);
          resolve({ cut });
        });
        server.closeIdleConnections();
      })),
  };
}

/** Runs `close` with a bound: resolves false if it did not finish in time. */
export async function closeWithin(close: () => Promise<void>, ms: number, log: Logger): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([close().then(() => true as const), late]);
  } catch (err) {
    log.error({ err: (err as Error).message }, 'error while closing');
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Installs the SIGTERM/SIGINT handlers of a serving process: the first signal shuts down
 * gracefully and exits (0 when every step finished, 1 when closing timed out or failed); a second
 * signal cuts the requests still in flight at once.
 */
export function onShutdownSignals(stop: () => Promise<boolean>, force: () => void, exit: (code: number) => void = (c) => process.exit(c)): void {
  let stopping = false;
  const handler = () => {
    if (stopping) return force();
    stopping = true;
    stop().then(
      (clean) => exit(clean ? 0 : 1),
      () => exit(1),
    );
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, handler);
}
