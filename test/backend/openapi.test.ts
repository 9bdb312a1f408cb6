import request from 'supertest';
import { z } from 'zod';
import type { Router } from 'express';
import { OPERATIONS, openApiPath } from '../../backend/openapi';
import { backendRoutes, BACKEND_BASE_PATH } from '../../backend/routes';
import { createAuthServices } from '../../server/auth';
import { keysApiRoutes } from '../../server/http/routes/keys-api';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { TokenService } from '../../scim/tokens';
import { ownWrites } from '../../server/repositories/runner';
import { createAuthFixture, signInForToken, type AuthFixture } from '../support/auth-fixture';
import { testDatabaseNames } from '../support/databases';

type Doc = { openapi: string; paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>> };

/** Routes a router registers: "METHOD /path" (Express form). */
function routesOf(router: Router, prefix = ''): string[] {
  const out: string[] = [];
  for (const layer of (router as unknown as { stack: { route?: { path: string; methods: Record<string, boolean> } }[] }).stack) {
    if (!layer.route) continue;
    for (const m of Object.keys(layer.route.methods)) if (m !== '_all') out.push(`${m.toUpperCase()} ${prefix}${layer.route.path}`);
  }
  return out;
}

/** The OpenAPI 3.1 document (issue 11): generated from the routes' zod schemas; every route in it; real responses validate. */
describe.each(testDatabaseNames())('OpenAPI document (%s)', (kind) => {
  let f: AuthFixture;
  let doc: Doc;
  let backendToken: string;
  beforeAll(async () => {
    f = await createAuthFixture(kind, { CS_BACKEND_CHANGE_FEED: 'true' });
    backendToken = (await new TokenService(ownWrites(f.store, (m) => new ApiTokenRepository(m))).create({ name: 'openapi', scope: 'backend' })).token;
    doc = (await request(f.app).get('/openapi.json').expect(200).expect('content-type', /application\/json/)).body;
  });
  afterAll(async () => {
    await f?.cleanupAll();
  });

  /** Validates a real response against the document's schema for it (JSON Schema → zod). */
  const conforms = (method: string, path: string, res: request.Response) => {
    const op = doc.paths[openApiPath(path)]?.[method];
    expect(op).toBeDefined();
    const response = op.responses[String(res.status)];
    expect(response).toBeDefined();
    const content = response.content?.[String(res.type)];
    if (res.status === 204) return expect(content).toBeUndefined();
    expect(content).toBeDefined();
    const r = z.fromJSONSchema(content!.schema as never).safeParse(res.body);
    if (!r.success) throw new Error(`${method} ${path} ${res.status}: ${r.error.message}`);
  };

  test('OpenAPI 3.1; every route of the backend API and the key API is in it, and nothing else', () => {
    expect(doc.openapi).toBe('3.1.0');
    const routes = [...routesOf(backendRoutes(f), BACKEND_BASE_PATH), ...routesOf(keysApiRoutes(f, createAuthServices(f)))].sort();
    const documented = OPERATIONS.map((o) => `${o.method.toUpperCase()} ${o.path}`).sort();
    expect(routes.length).toBeGreaterThanOrEqual(12);
    expect(documented).toEqual(routes);
    for (const o of OPERATIONS) expect(doc.paths[openApiPath(o.path)][o.method]).toBeDefined();
  });

  test('request schemas come from the routes: the document refuses what the API refuses', () => {
    const body = (path: string) => doc.paths[path].post as unknown as { requestBody: { content: { 'application/json': { schema: unknown } } } };
    const createGroup = z.fromJSONSchema(body(`${BACKEND_BASE_PATH}/groups`).requestBody.content['application/json'].schema as never);
    expect(createGroup.safeParse({ name: 'ok', members: [{ id: 'x' }] }).success).toBe(true);
    expect(createGroup.safeParse({ name: 'x'.repeat(256) }).success).toBe(false);
    expect(createGroup.safeParse({ name: 'ok', extra: 1 }).success).toBe(false);
    const wrap = z.fromJSONSchema(body('/api/keys/data-keys/wrap').requestBody.content['application/json'].schema as never);
    expect(wrap.safeParse({ key: 'not base64url!' }).success).toBe(false);
  });

  test('real responses of every documented operation validate against the document', async () => {
    const b = (t: request.Test) => t.set('Authorization', `Bearer ${backendToken}`);
    const created = await b(request(f.app).post(`${BACKEND_BASE_PATH}/users`)).send({ userName: 'openapi@example.com', email: 'openapi@example.com' }).expect(201);
    conforms('post', `${BACKEND_BASE_PATH}/users`, created);
    conforms('post', `${BACKEND_BASE_PATH}/users`, await b(request(f.app).post(`${BACKEND_BASE_PATH}/users`)).send({ userName: 'openapi@example.com' }).expect(200));
    conforms('get', `${BACKEND_BASE_PATH}/users/:id`, await b(request(f.app).get(`${BACKEND_BASE_PATH}/users/${created.body.id}`)).expect(200));
    conforms('post', `${BACKEND_BASE_PATH}/public-keys/lookup`, await b(request(f.app).post(`${BACKEND_BASE_PATH}/public-keys/lookup`)).send({ ids: [created.body.id], emails: ['x@example.com'] }).expect(200));
    const g = await b(request(f.app).post(`${BACKEND_BASE_PATH}/groups`)).send({ name: 'Doc', members: [{ id: created.body.id }] }).expect(201);
    conforms('post', `${BACKEND_BASE_PATH}/groups`, g);
    conforms('get', `${BACKEND_BASE_PATH}/groups/:id`, await b(request(f.app).get(`${BACKEND_BASE_PATH}/groups/${g.body.id}`)).expect(200));
    conforms('patch', `${BACKEND_BASE_PATH}/groups/:id`, await b(request(f.app).patch(`${BACKEND_BASE_PATH}/groups/${g.body.id}`)).send({ name: 'Doc 2' }).expect(200));
    conforms('get', `${BACKEND_BASE_PATH}/groups`, await b(request(f.app).get(`${BACKEND_BASE_PATH}/groups?limit=1`)).expect(200));
    conforms('get', `${BACKEND_BASE_PATH}/changes`, await b(request(f.app).get(`${BACKEND_BASE_PATH}/changes`)).expect(200));
    // Problems too.
    conforms('patch', `${BACKEND_BASE_PATH}/groups/:id`, await b(request(f.app).patch(`${BACKEND_BASE_PATH}/groups/${g.body.id}`)).set('If-Match', '"v0"').send({ name: 'x' }).expect(412));
    conforms('post', `${BACKEND_BASE_PATH}/groups`, await b(request(f.app).post(`${BACKEND_BASE_PATH}/groups`)).send({ name: 'Bad', members: [{ id: 'nobody' }] }).expect(422));
    conforms('delete', `${BACKEND_BASE_PATH}/groups/:id`, await b(request(f.app).delete(`${BACKEND_BASE_PATH}/groups/${g.body.id}`)).expect(204));

    const token = await signInForToken(f, { nameId: 'openapi@example.com' });
    const u = (t: request.Test) => t.set('Authorization', `Bearer ${token}`);
    const me = await u(request(f.app).get('/api/keys/me')).expect(200);
    conforms('get', '/api/keys/me', me);
    // The check can fail: a wrong type or a missing field does not validate.
    const fake = (body: unknown) => ({ status: 200, type: 'application/json', body }) as unknown as request.Response;
    expect(() => conforms('get', '/api/keys/me', fake({ ...me.body, passwordKey: 5 }))).toThrow();
    expect(() => conforms('get', `${BACKEND_BASE_PATH}/groups/:id`, fake({ ...g.body, members: undefined }))).toThrow();
    conforms('post', '/api/keys/password-key/unwrap', await u(request(f.app).post('/api/keys/password-key/unwrap')).send({ wrappedPasswordKey: me.body.wrappedPasswordKey }).expect(200));
    const wrapped = await u(request(f.app).post('/api/keys/data-keys/wrap')).send({ key: Buffer.alloc(32, 7).toString('base64url') }).expect(200);
    conforms('post', '/api/keys/data-keys/wrap', wrapped);
    conforms('post', '/api/keys/data-keys/unwrap', await u(request(f.app).post('/api/keys/data-keys/unwrap')).send({ wrappedKey: wrapped.body.wrappedKey }).expect(200));
    conforms('post', '/api/keys/data-keys/unwrap', await u(request(f.app).post('/api/keys/data-keys/unwrap')).send({}).expect(400));
  });
});
