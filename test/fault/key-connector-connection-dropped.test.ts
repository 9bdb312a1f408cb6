import { randomBytes, randomUUID } from 'node:crypto';
import { KeyConnectorRepository } from '../../key-connector/repository';
import { createTestContext, type TestContext } from '../support/context';
import { listen, type Listening } from '../support/http-server';
import { keyConnectorClient } from '../support/key-connector-client';
import { startOidcIssuer, type OidcIssuer } from '../emulators/oidc-issuer';
import { sentWhileDropping } from './kill-connection';

/**
 * The Key Connector's writes (Bitwarden clients' exact requests: support/key-connector-client.ts)
 * lose their database connection inside their transaction: a prompt 503, the key is stored or
 * replaced entirely or not at all, and the client's retry succeeds on a fresh connection.
 */
describe.each(['postgres', 'mariadb'] as const)('Key Connector write whose connection is dropped (%s)', (kind) => {
  let idp: OidcIssuer;
  let ctx: TestContext;
  let server: Listening;
  let url: string;
  beforeAll(async () => {
    idp = await startOidcIssuer();
    ctx = await createTestContext(kind, { CS_KEY_CONNECTOR_ISSUER: idp.issuer, CS_KEY_CONNECTOR_WEB_VAULT_URL: 'https://vault.example.com/' });
    server = await listen(ctx.app);
    url = `${server.url}/key-connector`;
  });
  afterAll(async () => {
    await server?.close();
    await ctx?.cleanup();
    await idp?.close();
  });

  const { getKey, sendKey } = keyConnectorClient(() => url);
  const b64 = () => randomBytes(32).toString('base64');

  /** Sends with the statement `method` of the repository killing its connection; expects a prompt 503. */
  async function dropped(method: 'insert' | 'replace', send: () => Promise<Response>): Promise<void> {
    const res = await sentWhileDropping(kind, ctx.db.url, KeyConnectorRepository.prototype, method, send);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await res.text()).not.toMatch(/terminat|administrator|KILL|ECONN|query/i);
  }

  test('POST (first key) and PUT (replacement): 503, nothing half-stored, the retry is stored', async () => {
    const token = await idp.token(randomUUID());
    const first = b64();
    await dropped('insert', () => sendKey('POST', token, JSON.stringify({ key: first })));
    expect((await getKey(token)).status).toBe(404);
    expect((await sendKey('POST', token, JSON.stringify({ key: first }))).status).toBe(200);
    expect(await (await getKey(token)).json()).toEqual({ key: first });

    const second = b64();
    await dropped('replace', () => sendKey('PUT', token, JSON.stringify({ key: second })));
    expect(await (await getKey(token)).json()).toEqual({ key: first });
    expect((await sendKey('PUT', token, JSON.stringify({ key: second }))).status).toBe(200);
    expect(await (await getKey(token)).json()).toEqual({ key: second });
  });
});
