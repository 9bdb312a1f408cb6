import { randomBytes, randomUUID } from 'node:crypto';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { createApp } from '../../server/http/app';
import { createAuthFixture, signInForToken } from '../support/auth-fixture';
import type { DatabaseName } from '../support/databases';
import { listen } from '../support/http-server';
import { startOidcIssuer } from '../emulators/oidc-issuer';
import { measure, printFigures, type Figure } from './measure';

/**
 * Key Connector `GET /user-keys` next to the key API's `POST /api/keys/password-key/unwrap`, same
 * process, same app, same database, same keep-alive client and concurrency, back to back. Both do
 * token verification (RS256 against a JWKS vs ES256 own key), one KMS unwrap (local adapter) and
 * one audited write (last access + audit event vs audit event).
 * Run: `npm run build && node dist/test/bench/key-connector-bench.js [sqlite|postgres|mariadb] [seconds]`.
 */
function call(agent: Agent, url: string, method: string, headers: Record<string, string>, body?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, agent, headers: body ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers } : headers }, (res: IncomingMessage) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export async function benchKeyConnector(kind: DatabaseName = 'sqlite', seconds = 3, concurrency = 16): Promise<Figure[]> {
  const oidc = await startOidcIssuer();
  const f = await createAuthFixture(kind, { CS_KEY_CONNECTOR_ISSUER: oidc.issuer });
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const api = await listen(createApp(f));
  try {
    const user = await f.keys.provisionUser({ userName: 'bench@example.com' }, { actor: 'bench' });
    const token = await signInForToken(f, { nameId: 'bench@example.com' });
    const unwrapBody = JSON.stringify({ wrappedPasswordKey: user.keys.wrappedPasswordKey });
    const kcToken = await oidc.token(randomUUID());
    await call(agent, `${api.url}/key-connector/user-keys`, 'POST', { Authorization: `Bearer ${kcToken}` }, JSON.stringify({ key: randomBytes(32).toString('base64') }));

    const keyApi = await measure(`key API POST /api/keys/password-key/unwrap (${kind}, ${concurrency} conns)`, () => call(agent, `${api.url}/api/keys/password-key/unwrap`, 'POST', { Authorization: `Bearer ${token}` }, unwrapBody), { seconds, concurrency });
    const kc = await measure(`Key Connector GET /key-connector/user-keys (${kind}, ${concurrency} conns)`, () => call(agent, `${api.url}/key-connector/user-keys`, 'GET', { Authorization: `Bearer ${kcToken}`, Accept: 'application/json' }), { seconds, concurrency });
    return [keyApi, kc];
  } finally {
    agent.destroy();
    await api.close();
    await f.cleanupAll();
    await oidc.close();
  }
}

if (require.main === module) {
  const kind = (process.argv[2] ?? 'sqlite') as DatabaseName;
  const seconds = Number(process.argv[3] ?? 3);
  benchKeyConnector(kind, seconds)
    .then((figures) => printFigures('Key Connector vs key API over HTTP', figures))
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    });
}
