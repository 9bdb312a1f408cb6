import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import { AsyncLocalStorage } from 'node:async_hooks';

/** The delay timers of the server a request came in on, so close() can cancel them. */
const serverDelays = new AsyncLocalStorage<Set<NodeJS.Timeout>>();

/**
 * Fault injection shared by the emulators: the next N requests are throttled, fail with 5xx or are
 * delayed; `down` makes every request fail until cleared. `requests` counts what reached us, so a
 * test can prove the circuit breaker stopped calls from arriving.
 */
export class Faults {
  throttleNext = 0;
  errorNext = 0;
  delayNext = 0;
  delayMs = 0;
  down = false;
  requests = 0;

  /** Returns the fault to apply to this request, consuming one from its counter. */
  take(): 'throttle' | 'error' | 'delay' | undefined {
    this.requests++;
    if (this.down) return 'error';
    if (this.throttleNext > 0) return this.throttleNext--, 'throttle';
    if (this.errorNext > 0) return this.errorNext--, 'error';
    if (this.delayNext > 0) return this.delayNext--, 'delay';
    return undefined;
  }

  reset(): void {
    this.throttleNext = this.errorNext = this.delayNext = this.delayMs = 0;
    this.down = false;
  }
}

export type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => Promise<void> | void;

export interface Running {
  server: Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

/** Starts a server on 127.0.0.1:0 (TLS when key/cert given). */
export async function listen(handler: Handler, tls?: { key: string; cert: string }): Promise<Running> {
  const delays = new Set<NodeJS.Timeout>();
  const wrapped = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      Promise.resolve(serverDelays.run(delays, () => handler(req, Buffer.concat(chunks), res))).catch((err) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: String(err) }));
      });
    });
  };
  const server = tls ? createHttps({ key: tls.key, cert: tls.cert }, wrapped) : createHttp(wrapped);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        // A request held by a `delay` fault would keep its timer (and the test process) alive after
        // the client gave up: cancel it; its connection is closed next, so it never answers.
        for (const t of delays) clearTimeout(t);
        delays.clear();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, contentType = 'application/json'): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Holds a request for `ms`; cancelled when its emulator closes (see listen). */
export const delay = (ms: number) =>
  new Promise<void>((resolve) => {
    const owner = serverDelays.getStore();
    const t = setTimeout(() => {
      owner?.delete(t);
      resolve();
    }, ms);
    owner?.add(t);
  });

/** Strict base64 check (Node's decoder silently skips junk; the real services do not). */
export function strictBase64(s: unknown): Buffer | undefined {
  if (typeof s !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) return undefined;
  return Buffer.from(s, 'base64');
}
