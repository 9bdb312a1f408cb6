import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { createApp } from '../../server/http/app';
import { binding } from '../../server/keys/binding';
import { createAuthFixture, signInForToken } from '../support/auth-fixture';
import { listen } from '../support/http-server';
import { measure } from './measure';

/**
 * Key-API throughput over real HTTP: POST /api/keys/password-key/unwrap with a Bearer token — token
 * verification (ES256, JWKS lookup), KMS unwrap with the local adapter, audit write (SQLite) — next
 * to a bare node:http server doing only the same local unwrap for the same body, in the same run,
 * as the limit. Both are driven by the same keep-alive client at the same concurrency.
 */
export interface KeyApiFigures {
  rps: number;
  p50ms: number;
  p99ms: number;
  bareRps: number;
  bareP50ms: number;
  bareP99ms: number;
  concurrency: number;
}

function post(agent: Agent, url: string, body: string, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', agent, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers } }, (res: IncomingMessage) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export async function benchKeyApi(opts: { seconds?: number; concurrency?: number } = {}): Promise<KeyApiFigures> {
  const seconds = opts.seconds ?? 3;
  const concurrency = opts.concurrency ?? 16;
  const f = await createAuthFixture('sqlite');
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const servers: { close: () => Promise<void> }[] = [];
  try {
    const user = await f.keys.provisionUser({ userName: 'bench@example.com' }, { actor: 'bench' });
    const token = await signInForToken(f, { nameId: 'bench@example.com' });
    const body = JSON.stringify({ wrappedPasswordKey: user.keys.wrappedPasswordKey });

    const api = await listen(createApp(f));
    servers.push(api);
    const full = await measure('key API unwrap over HTTP', () => post(agent, `${api.url}/api/keys/password-key/unwrap`, body, { Authorization: `Bearer ${token}` }), { seconds, concurrency });

    // The limit: parse the same body, the same KMS unwrap (same registry, same binding), answer.
    const bare = await listen((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const { wrappedPasswordKey } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { wrappedPasswordKey: string };
        f.kms.unwrap(wrappedPasswordKey, binding.passwordKey(user.id)).then(
          (pk) => {
            const out = JSON.stringify({ passwordKey: pk.toString('base64url') });
            pk.fill(0);
            res.writeHead(200, { 'Content-Type': 'application/json' }).end(out);
          },
          () => res.writeHead(403).end(),
        );
      });
    });
    servers.push(bare);
    const limit = await measure('bare node:http unwrap', () => post(agent, `${bare.url}/`, body, {}), { seconds, concurrency });

    return { rps: full.opsPerSecond, p50ms: full.p50ms, p99ms: full.p99ms, bareRps: limit.opsPerSecond, bareP50ms: limit.p50ms, bareP99ms: limit.p99ms, concurrency };
  } finally {
    agent.destroy();
    for (const s of servers) await s.close();
    await f.cleanupAll();
  }
}
