import { request as httpRequest } from 'node:http';
import request from 'supertest';
import { ownWrites } from '../../server/repositories/runner';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { TokenService } from '../../scim/tokens';
import { testDatabaseNames } from '../support/databases';
import { listen, type Listening } from '../support/http-server';
import { toAppError } from '../../server/http/problem';
import { auditOf, createAuthFixture, signInForToken, type AuthFixture } from '../support/auth-fixture';

/**
 * Requests that Express or body-parser reject before our code runs carry a 4xx status inside the
 * error (bad percent-encoding, a body that does not inflate, too many form fields). They must stay
 * 4xx in the protocol's own error format — never a 500, never the parser's internals — and the
 * sign-in and key endpoints record each refusal in the audit trail.
 */
interface Raw {
  status: number;
  type: string;
  body: string;
}

/** Sends bytes exactly as given (supertest would re-encode the path or the body). */
function raw(base: string, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { method, headers: { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const NOT_GZIP = Buffer.from('this is not gzip, deflate or brotli data at all {"userName":"x"}');
const ENCODINGS = ['gzip', 'deflate', 'br'] as const;

/** Nothing of a stack trace or of zlib's / the router's own wording reaches the client. */
function expectNoInternals(text: string): void {
  expect(text).not.toMatch(/\bat .+\.(js|ts):\d+|node_modules|Failed to decode param|incorrect header check|invalid stored block|Z_DATA_ERROR|internal error/i);
}

describe.each(testDatabaseNames())('malformed requests on %s', (kind) => {
  let f: AuthFixture;
  let server: Listening;
  let scimToken: string;
  let apiToken: string;

  beforeAll(async () => {
    f = await createAuthFixture(kind);
    const tokens = new TokenService(ownWrites(f.store, (m) => new ApiTokenRepository(m)));
    scimToken = (await tokens.create({ name: 'test idp', scope: 'scim' })).token;
    await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' });
    apiToken = await signInForToken(f, { nameId: 'alice@example.com' });
    server = await listen(f.app);
  });
  afterAll(async () => {
    await server?.close();
    await f?.cleanupAll();
  });

  const lastDetail = async (action: string) => JSON.parse((await auditOf(f, action))[0]?.detail ?? '{}') as Record<string, string>;

  test.each(['/Users/%E0%A4%A', '/Groups/%E0%A4%A', '/Users/%ZZ'])('GET /scim/v2%s (bad percent-encoding) → 400 in the SCIM error schema', async (path) => {
    const res = await raw(server.url, 'GET', `/scim/v2${path}`, { Authorization: `Bearer ${scimToken}` });
    expect(res.status).toBe(400);
    expect(res.type).toMatch(/^application\/scim\+json/);
    const body = JSON.parse(res.body);
    expect(body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '400', detail: expect.stringMatching(/percent-encoding/) });
    expectNoInternals(res.body);
  });

  test.each(ENCODINGS)('SCIM POST /Users with Content-Encoding: %s that does not inflate → 400 invalidSyntax, nothing written', async (encoding) => {
    const before = (await request(f.app).get('/scim/v2/Users').set('Authorization', `Bearer ${scimToken}`)).body.totalResults;
    const res = await raw(server.url, 'POST', '/scim/v2/Users', { Authorization: `Bearer ${scimToken}`, 'Content-Type': 'application/scim+json', 'Content-Encoding': encoding }, NOT_GZIP);
    expect(res.status).toBe(400);
    expect(res.type).toMatch(/^application\/scim\+json/);
    expect(JSON.parse(res.body)).toMatchObject({ status: '400', scimType: 'invalidSyntax', detail: expect.stringMatching(/Content-Encoding/) });
    expectNoInternals(res.body);
    expect((await request(f.app).get('/scim/v2/Users').set('Authorization', `Bearer ${scimToken}`)).body.totalResults).toBe(before);
  });

  test.each(ENCODINGS)('key API with Content-Encoding: %s that does not inflate → 400 problem+json, audited', async (encoding) => {
    const res = await raw(server.url, 'POST', '/api/keys/data-keys/wrap', { Authorization: `Bearer ${apiToken}`, 'Content-Type': 'application/json', 'Content-Encoding': encoding }, NOT_GZIP);
    expect(res.status).toBe(400);
    expect(res.type).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(res.body)).toMatchObject({ status: 400, code: 'invalid_request', detail: expect.stringMatching(/Content-Encoding/) });
    expectNoInternals(res.body);
    expect((await auditOf(f, 'key-api.request'))[0]).toMatchObject({ outcome: 'refused' });
    expect(await lastDetail('key-api.request')).toMatchObject({ error: 'invalid_request' });
  });

  test.each(ENCODINGS)('/oauth/token with Content-Encoding: %s that does not inflate → 400 invalid_request (RFC 6749 §5.2), audited', async (encoding) => {
    const res = await raw(server.url, 'POST', '/oauth/token', { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Encoding': encoding }, NOT_GZIP);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'invalid_request', error_description: expect.stringMatching(/Content-Encoding/) });
    expectNoInternals(res.body);
    expect(await lastDetail('oauth.token')).toMatchObject({ error: 'invalid_request', reason: expect.stringMatching(/Content-Encoding/) });
  });

  test('an unknown Content-Encoding → 415 on the API and under /scim', async () => {
    const api = await raw(server.url, 'POST', '/api/keys/data-keys/wrap', { Authorization: `Bearer ${apiToken}`, 'Content-Type': 'application/json', 'Content-Encoding': 'compress' }, NOT_GZIP);
    expect(api.status).toBe(415);
    expect(JSON.parse(api.body)).toMatchObject({ code: 'unsupported_media_type' });
    const scim = await raw(server.url, 'POST', '/scim/v2/Users', { Authorization: `Bearer ${scimToken}`, 'Content-Type': 'application/scim+json', 'Content-Encoding': 'compress' }, NOT_GZIP);
    expect(scim.status).toBe(415);
    expect(JSON.parse(scim.body)).toMatchObject({ status: '415' });
  });

  test('/oauth/token with 17 form fields (limit 16) → 413 problem+json, audited', async () => {
    const fields = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`f${i}`, 'x']));
    const res = await request(f.app).post('/oauth/token').type('form').send(fields);
    expect(res.status).toBe(413);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ code: 'payload_too_large', detail: expect.stringMatching(/more fields/) });
    expectNoInternals(res.text);
    expect(await lastDetail('oauth.token')).toMatchObject({ error: 'payload_too_large' });
    // 16 fields are parsed and answered by the token endpoint itself.
    const ok = await request(f.app).post('/oauth/token').type('form').send(Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`f${i}`, 'x'])));
    expect(ok.status).toBe(400);
    expect(ok.body).toMatchObject({ error: 'unsupported_grant_type' });
  });

  test('/auth/saml/acs with 9 form fields (limit 8) → 413 sign-in page, audited', async () => {
    const fields = { SAMLResponse: 'PHg+PC94Pg==', ...Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}`, 'x'])) };
    const res = await request(f.app).post('/auth/saml/acs').type('form').send(fields);
    expect(res.status).toBe(413);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.text).toMatch(/more fields/);
    expectNoInternals(res.text);
    const ev = (await auditOf(f, 'saml.login'))[0];
    expect(ev).toMatchObject({ outcome: 'refused' });
    expect(JSON.parse(ev.detail!)).toMatchObject({ error: 'payload_too_large' });
  });

});

describe('toAppError', () => {
  test('a 5xx status carried by a foreign error is not trusted; a 4xx keeps its status but not its message', () => {
    const e = toAppError(Object.assign(new Error('secret internals'), { status: 502, expose: true }));
    expect(e.status).toBe(500);
    expect(e.message).not.toContain('secret');
    const q = toAppError(Object.assign(new Error('details of the parser'), { status: 408 }));
    expect(q).toMatchObject({ status: 408, code: 'request_timeout' });
    expect(q.message).not.toContain('parser');
  });
});
