import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';

export interface Listening {
  server: Server;
  url: string;
  close: () => Promise<void>;
}

/** Listens on host:0 and returns the base URL; `close` also drops keep-alive connections. */
export async function listen(handler: RequestListener, host = '127.0.0.1'): Promise<Listening> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://${host}:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.json': 'application/json', '.md': 'text/markdown' };

/** Serves a folder read-only, plus extra in-memory files (e.g. config.json). */
export function staticFiles(root: string, extra: Record<string, string> = {}): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const rel = path === '/' ? 'index.html' : path.slice(1);
    const send = (status: number, body: string | Buffer, type = 'text/plain') => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(body);
    };
    if (extra[rel] !== undefined) return send(200, extra[rel], TYPES[extname(rel)] ?? 'text/plain');
    const file = normalize(join(root, rel));
    if (!file.startsWith(normalize(root))) return send(403, 'forbidden');
    readFile(file).then(
      (data) => send(200, data, TYPES[extname(file)] ?? 'application/octet-stream'),
      () => send(404, 'not found'),
    );
  };
}
