import { createServer, request as httpRequest, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAuthServices } from '../../server/auth';
import { signAccessToken } from '../../server/auth/tokens';
import { createApp } from '../../server/http/app';
import { withFastKeyApi } from '../../server/http/fast/key-api';
import { testDatabaseNames } from '../support/databases';
import { anonymousRefusalsOf } from '../../server/auth/sign-in-service';
import { createAuthFixture, signInForToken, type AuthFixture } from '../support/auth-fixture';

/**
 * The key API's fast path (server/http/fast/key-api.ts) answers exactly as the Express routes do:
 * one matrix of requests goes to a server with the fast path and to one without it (both on the
 * same database, keys and signing keys), and every answer must match in status, body and headers
 * (Date aside), and leave the same audit rows. The fast path's fallback is counted, so the test
 * also shows which requests the fast path answered itself and which it handed to Express unread.
 */
const UNWRAP = '/api/keys/password-key/unwrap';
const ME = '/api/keys/me';
const ALLOWED = 'https://app.example.com';
const SUCCEEDS = new Set(['success', 'success, allowed origin', 'success, disallowed origin', 'success, charset=utf-8 and a byte-order mark', 'trailing slash', 'GET /me', 'GET /me with a query', 'HEAD /me']);

interface Sent {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}
interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function listen(listener: RequestListener): Promise<{ server: Server; port: number }> {
  const server = createServer(listener);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })));
}

/** One request on its own connection, exactly as given (no header added but Host and Content-Length). */
function send(port: number, s: Sent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = s.body === undefined ? undefined : Buffer.isBuffer(s.body) ? s.body : Buffer.from(s.body);
    const headers: Record<string, string> = { ...s.headers };
    if (body) headers['content-length'] ??= String(body.length);
    const req = httpRequest({ host: '127.0.0.1', port, method: s.method, path: s.path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe.each(testDatabaseNames())('key API fast path ≡ Express routes on %s', (kind) => {
  let f: AuthFixture;
  let fast: { server: Server; port: number };
  let slow: { server: Server; port: number };
  let delegated = 0;
  let alice: { id: string; blob: string };
  let bob: { id: string; blob: string };
  let carolBlob: string;
  let tokens: { alice: string; carol: string; expired: string; tamperedSig: string };

  beforeAll(async () => {
    f = await createAuthFixture(kind);
    const auth = createAuthServices(f);
    const app = createApp(f, auth);
    fast = await listen(
      withFastKeyApi(f, auth, (req, res) => {
        delegated++;
        app(req, res);
      }),
    );
    slow = await listen(createApp(f));
    const a = await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' });
    const b = await f.keys.provisionUser({ userName: 'bob@example.com' }, { actor: 'test' });
    const c = await f.keys.provisionUser({ userName: 'carol@example.com' }, { actor: 'test' });
    alice = { id: a.id, blob: a.keys.wrappedPasswordKey };
    bob = { id: b.id, blob: b.keys.wrappedPasswordKey };
    carolBlob = c.keys.wrappedPasswordKey;
    const aliceToken = await signInForToken(f, { nameId: 'alice@example.com' });
    const carolToken = await signInForToken(f, { nameId: 'carol@example.com' });
    await f.keys.setUserActive(c.id, false, { actor: 'scim' });
    // An expired token signed by the server's own current key: only its lifetime is wrong.
    const { kid, privateKey } = await auth.signingKeys.signingKey({ actor: 'test' });
    const t = f.config.auth.tokens;
    const expired = (await signAccessToken({ kid, privateKey, userId: a.id, clientId: 'web', issuer: t.issuer, audience: t.audience, ttlSeconds: 60, now: Math.floor(Date.now() / 1000) - 3600 })).token;
    const sig = aliceToken.split('.')[2]!;
    const tamperedSig = `${aliceToken.slice(0, aliceToken.length - sig.length)}${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`;
    tokens = { alice: aliceToken, carol: carolToken, expired, tamperedSig };
  });
  afterAll(async () => {
    await new Promise((r) => fast?.server.close(r));
    await new Promise((r) => slow?.server.close(r));
    await f?.cleanupAll();
  });

  const json = { 'content-type': 'application/json' };
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
  const unwrapBody = (blob: string) => JSON.stringify({ wrappedPasswordKey: blob });
  const tamper = (blob: string) => `${blob.slice(0, -6)}${blob.slice(-6, -5) === 'A' ? 'B' : 'A'}${blob.slice(-5)}`;

  /** name → the request, and whether the fast path answers it itself (false: handed to Express). */
  const matrix: [string, () => Sent, boolean][] = [
    ['success', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice) }, body: unwrapBody(alice.blob) }), true],
    ['success, allowed origin', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice), origin: ALLOWED }, body: unwrapBody(alice.blob) }), true],
    ['success, disallowed origin', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice), origin: 'https://evil.example' }, body: unwrapBody(alice.blob) }), true],
    ['success, charset=utf-8 and a byte-order mark', () => ({ method: 'POST', path: UNWRAP, headers: { 'content-type': 'application/json; charset=utf-8', ...bearer(tokens.alice) }, body: `\uFEFF${unwrapBody(alice.blob)}` }), true],
    ['missing token', () => ({ method: 'POST', path: UNWRAP, headers: json, body: unwrapBody(alice.blob) }), true],
    ['not a Bearer header', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, body: unwrapBody(alice.blob) }), true],
    ['bad token signature', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.tamperedSig), origin: ALLOWED }, body: unwrapBody(alice.blob) }), true],
    ['garbage token', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer('eyJhbGciOiJub25lIn0.e30.') }, body: unwrapBody(alice.blob) }), true],
    ['expired token', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.expired) }, body: unwrapBody(alice.blob) }), true],
    ['deactivated user', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.carol) }, body: unwrapBody(carolBlob) }), true],
    ["another user's blob", () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice) }, body: unwrapBody(bob.blob) }), true],
    ['tampered blob', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice) }, body: unwrapBody(tamper(alice.blob)) }), true],
    ['not an envelope', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice) }, body: unwrapBody('not-an-envelope') }), true],
    ['bad JSON', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice) }, body: '{"wrappedPasswordKey": ' }), true],
    ['JSON that is not an object (strict)', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice) }, body: '"text"' }), true],
    ['duplicate member names', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice) }, body: `{"wrappedPasswordKey":"${bob.blob}","wrappedPasswordKey":"${alice.blob}"}` }), true],
    ['unknown member', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice) }, body: JSON.stringify({ wrappedPasswordKey: alice.blob, userId: bob.id }) }), true],
    ['array body', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice) }, body: '[]' }), true],
    ['oversize body', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice) }, body: JSON.stringify({ wrappedPasswordKey: 'A'.repeat(f.config.server.maxBodyBytes) }) }), false],
    ['oversize body, bad token', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.tamperedSig) }, body: JSON.stringify({ wrappedPasswordKey: 'A'.repeat(f.config.server.maxBodyBytes) }) }), false],
    ['wrong Content-Type', () => ({ method: 'POST', path: UNWRAP, headers: { 'content-type': 'text/plain', ...bearer(tokens.alice) }, body: unwrapBody(alice.blob) }), false],
    ['unsupported charset', () => ({ method: 'POST', path: UNWRAP, headers: { 'content-type': 'application/json; charset=latin1', ...bearer(tokens.alice) }, body: unwrapBody(alice.blob) }), false],
    ['empty body', () => ({ method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice) }, body: '' }), false],
    ['preflight, allowed origin', () => ({ method: 'OPTIONS', path: UNWRAP, headers: { origin: ALLOWED, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } }), false],
    ['preflight, disallowed origin', () => ({ method: 'OPTIONS', path: UNWRAP, headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } }), false],
    ['wrong method', () => ({ method: 'PUT', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice) }, body: unwrapBody(alice.blob) }), false],
    ['GET on the unwrap path', () => ({ method: 'GET', path: UNWRAP, headers: bearer(tokens.alice) }), false],
    ['trailing slash', () => ({ method: 'POST', path: `${UNWRAP}/`, headers: { ...json, ...bearer(tokens.alice) }, body: unwrapBody(alice.blob) }), false],
    ['GET /me', () => ({ method: 'GET', path: ME, headers: { ...bearer(tokens.alice), origin: ALLOWED } }), true],
    ['GET /me, bad token', () => ({ method: 'GET', path: ME, headers: bearer(tokens.tamperedSig) }), true],
    ['GET /me, deactivated user', () => ({ method: 'GET', path: ME, headers: bearer(tokens.carol) }), true],
    ['GET /me with a query', () => ({ method: 'GET', path: `${ME}?x=1`, headers: bearer(tokens.alice) }), false],
    ['HEAD /me', () => ({ method: 'HEAD', path: ME, headers: bearer(tokens.alice) }), false],
  ];

  /** Audit rows of one request id, without what differs by nature (row id, time, chain columns). */
  const auditRows = async (requestId: string) => {
    const rows: Record<string, unknown>[] = await f.store.dataSource.query(
      `SELECT id, actor, action, target_type, target_id, kek_uri, outcome, detail FROM audit_events WHERE request_id = ${kind === 'postgres' ? '$1' : '?'} ORDER BY id`,
      [requestId],
    );
    return rows.map(({ id, ...r }) => ({ id: Number(id), row: r }));
  };

  // Token refusals are audited at most 10 a minute per address (the rest counted): start each case
  // with a fresh window so every refusal of the matrix leaves its own row on both paths.
  beforeEach(() => anonymousRefusalsOf(f.store).flush(true));

  test.each(matrix)('%s: same status, body, headers and audit rows', async (name, make, answeredFast) => {
    const requestId = `eq-${kind}-${name.replace(/[^A-Za-z0-9]+/g, '-')}`.slice(0, 64);
    const s = make();
    const withId = { ...s, headers: { ...s.headers, 'x-request-id': requestId } };

    const before = delegated;
    const a = await send(fast.port, withId);
    expect(delegated - before).toBe(answeredFast ? 0 : 1);
    const fastRows = await auditRows(requestId);
    const b = await send(slow.port, withId);
    const slowRows = (await auditRows(requestId)).filter((r) => !fastRows.some((x) => x.id === r.id));

    const comparable = (x: Answer) => {
      const { date, ...headers } = x.headers;
      expect(date).toBeDefined();
      return { status: x.status, headers, body: x.body };
    };
    expect(comparable(a)).toEqual(comparable(b));
    expect(fastRows.map((r) => r.row)).toEqual(slowRows.map((r) => r.row));
    // The requests meant to be refused were refused (and those the fast path answered left an
    // audit row); the others answered with a key, audited as a success.
    if (name.startsWith('preflight')) expect(a.status).toBe(204);
    else if (SUCCEEDS.has(name)) {
      expect(a.status).toBe(200);
      expect(a.headers['cache-control']).toBe('no-store');
      expect(fastRows.map((r) => r.row.outcome)).toEqual(['success']);
    } else {
      expect(a.status).toBeGreaterThanOrEqual(400);
      if (answeredFast) expect(fastRows.length).toBeGreaterThan(0);
      expect(a.body).not.toMatch(/passwordKey/);
    }
  });

  test('an unsafe X-Request-Id is replaced by a generated one on both paths', async () => {
    const s = { method: 'POST', path: UNWRAP, headers: { ...json, ...bearer(tokens.alice), 'x-request-id': 'bad id with spaces' }, body: unwrapBody(alice.blob) };
    const [a, b] = [await send(fast.port, s), await send(slow.port, s)];
    for (const x of [a, b]) expect(x.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
  });
});
