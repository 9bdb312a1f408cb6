import { createCipheriv, createDecipheriv, generateKeyPair, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { promisify } from 'node:util';

/**
 * The limit the HTTP benchmark compares Crypto Server against: a bare node:http server, run as its
 * own process, doing only the core work of each path — no auth, no database, no audit.
 *   POST /unwrap  JSON parse + one AES-256-GCM open with AAD (the password-key unwrap)
 *   POST /users   JSON parse + P-256 key pair (async) + JWK export + two AES-256-GCM seals
 *                 (private JWK under a fresh password key, the password key under the KEK)
 *   GET  /blob    a sealed password key to send to /unwrap (not measured)
 * Run as a script it prints "limit server listening on <url>" when ready.
 */
const kek = randomBytes(32);
const aadFor = (user: string) => Buffer.from(`cs1|password-key|user=${user}`, 'utf8');
const BENCH_USER = randomUUID();
const generateEcKeyPair = promisify(generateKeyPair);

function seal(key: Buffer, plaintext: Buffer, aad: Buffer): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64url');
}

function open(key: Buffer, blob: string, aad: Buffer): Buffer {
  const raw = Buffer.from(blob, 'base64url');
  const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  d.setAAD(aad);
  d.setAuthTag(raw.subarray(raw.length - 16));
  return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]);
}

const pk = randomBytes(32);
const sampleBlob = seal(kek, pk, aadFor(BENCH_USER));
pk.fill(0);

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const out = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(out), 'Cache-Control': 'no-store' }).end(out);
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === 'GET' && req.url === '/blob') return json(res, 200, { wrappedPasswordKey: sampleBlob });
  if (req.method === 'POST' && req.url === '/unwrap') {
    const { wrappedPasswordKey } = JSON.parse(await readBody(req)) as { wrappedPasswordKey: string };
    let key: Buffer;
    try {
      key = open(kek, wrappedPasswordKey, aadFor(BENCH_USER));
    } catch {
      return json(res, 403, { code: 'unwrap_refused' });
    }
    try {
      return json(res, 200, { passwordKey: key.toString('base64url') });
    } finally {
      key.fill(0);
    }
  }
  if (req.method === 'POST' && req.url === '/users') {
    const user = JSON.parse(await readBody(req)) as { userName?: string };
    const id = randomUUID();
    const { publicKey, privateKey } = (await generateEcKeyPair('ec', { namedCurve: 'P-256' })) as { publicKey: KeyObject; privateKey: KeyObject };
    const passwordKey = randomBytes(32);
    try {
      const privateJwk = Buffer.from(JSON.stringify(privateKey.export({ format: 'jwk' })), 'utf8');
      const privateSealed = seal(passwordKey, privateJwk, Buffer.from(`private-key|user=${id}`, 'utf8'));
      privateJwk.fill(0);
      const wrappedPasswordKey = seal(kek, passwordKey, aadFor(id));
      return json(res, 201, { id, userName: user.userName, publicJwk: publicKey.export({ format: 'jwk' }), privateSealed, wrappedPasswordKey });
    } finally {
      passwordKey.fill(0);
    }
  }
  json(res, 404, { code: 'not_found' });
}

/** The limit server, not yet listening. */
export const limitHandler: RequestListener = (req, res) => {
  handle(req, res).catch(() => json(res, 400, { code: 'invalid_request' }));
};

export function createLimitServer(): Server {
  const server = createServer(limitHandler);
  server.keepAliveTimeout = 30_000;
  return server;
}

if (require.main === module) {
  const server = createLimitServer();
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    console.log(`limit server listening on http://127.0.0.1:${port}`);
  });
  process.once('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
