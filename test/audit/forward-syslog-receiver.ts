/**
 * A TLS syslog receiver (RFC 5425 octet counting) run as its own process by the forwarding tests,
 * so that a test can kill it mid-stream. Appends every complete message, as received, to a file
 * (one JSON string per line) before reading on, and prints "listening <port>" once ready.
 *
 *   node -r test/fault/ts-register.js test/audit/forward-syslog-receiver.ts <port> <key.pem> <cert.pem> <out-file> [<client-ca.pem>]
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:tls';

/** Reads octet-counted frames from a byte stream; returns the messages and the unread rest. */
export function readOctetFrames(buffer: Buffer): { messages: string[]; rest: Buffer } {
  const messages: string[] = [];
  let at = 0;
  for (;;) {
    const space = buffer.indexOf(0x20, at);
    if (space < 0) break;
    const len = Number(buffer.subarray(at, space).toString('ascii'));
    if (!Number.isInteger(len) || len <= 0) throw new Error(`bad syslog frame length at byte ${at}`);
    if (buffer.length < space + 1 + len) break;
    messages.push(buffer.subarray(space + 1, space + 1 + len).toString('utf8'));
    at = space + 1 + len;
  }
  return { messages, rest: buffer.subarray(at) };
}

if (require.main === module) {
  const [port, keyFile, certFile, out, clientCa] = process.argv.slice(2);
  const server = createServer(
    { key: readFileSync(keyFile), cert: readFileSync(certFile), ...(clientCa ? { ca: readFileSync(clientCa), requestCert: true, rejectUnauthorized: true } : {}) },
    (socket) => {
      let pending: Buffer = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        const { messages, rest } = readOctetFrames(Buffer.concat([pending, chunk]));
        pending = rest;
        if (messages.length) appendFileSync(out, messages.map((m) => `${JSON.stringify(m)}\n`).join(''));
      });
      socket.on('error', () => undefined);
    },
  );
  server.on('tlsClientError', () => undefined);
  server.listen(Number(port), '127.0.0.1', () => {
    const addr = server.address();
    process.stdout.write(`listening ${typeof addr === 'object' && addr ? addr.port : port}\n`);
  });
}
