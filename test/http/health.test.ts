import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { SpyAdapter } from '../support/spy-kms';
import { createApp } from '../../server/http/app';
import { KmsUnavailableError } from '../../server/errors';

describe('health and error responses', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
  });
  afterAll(async () => ctx?.cleanup());

  test('GET /healthz answers while the process lives', async () => {
    const r = await request(ctx.app).get('/healthz').expect(200);
    expect(r.body).toEqual({ status: 'ok' });
    expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('GET /readyz answers 200 when the database and the KEK answer', async () => {
    const r = await request(ctx.app).get('/readyz').expect(200);
    expect(r.body).toEqual({ status: 'ready', checks: { database: 'ok', kms: 'ok' } });
  });

  test('GET /readyz answers 503 with Retry-After when the KMS fails, naming the failing check only', async () => {
    const spy = new SpyAdapter();
    spy.failNext = new KmsUnavailableError('connection refused to hsm.internal:1234');
    const app = createApp({ ...ctx, kms: spy.registry() });
    const r = await request(app).get('/readyz').expect(503);
    expect(r.headers['retry-after']).toBe('5');
    expect(r.body.checks).toEqual({ database: 'ok', kms: 'failing' });
    expect(JSON.stringify(r.body)).not.toContain('hsm.internal');
  });

  test('GET /metrics serves Prometheus text with process metrics', async () => {
    const r = await request(ctx.app).get('/metrics').expect(200);
    expect(r.headers['content-type']).toMatch(/text\/plain/);
    expect(r.text).toMatch(/crypto_server_process_cpu_user_seconds_total/);
  });

  test('/readyz shares one KMS round trip between probes for a few seconds (it is unauthenticated)', async () => {
    const spy = new SpyAdapter();
    const app = createApp({ ...ctx, kms: spy.registry(['local://default']) });
    await Promise.all([1, 2, 3].map(() => request(app).get('/readyz').expect(200)));
    await request(app).get('/readyz').expect(200);
    expect(spy.calls.check).toBe(1);
  });

  test('unknown routes answer problem+json 404', async () => {
    const r = await request(ctx.app).get('/nope').expect(404);
    expect(r.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(r.body).toMatchObject({ status: 404, code: 'not_found', type: 'urn:crypto-server:error:not_found' });
  });

  test('a sane X-Request-Id is echoed; an unsafe one is replaced', async () => {
    expect((await request(ctx.app).get('/healthz').set('X-Request-Id', 'abc-123')).headers['x-request-id']).toBe('abc-123');
    expect((await request(ctx.app).get('/healthz').set('X-Request-Id', 'x'.repeat(100))).headers['x-request-id']).not.toContain('xxx');
  });

  test('security headers are set and the framework is not advertised', async () => {
    const r = await request(ctx.app).get('/healthz');
    expect(r.headers['x-powered-by']).toBeUndefined();
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['strict-transport-security']).toBeDefined();
  });
});

describe('readiness when the database is gone', () => {
  test('GET /readyz answers 503 naming the database', async () => {
    const ctx = await createTestContext('sqlite');
    try {
      const app = ctx.app;
      await ctx.store.dataSource.destroy();
      const r = await request(app).get('/readyz').expect(503);
      expect(r.body.checks).toEqual({ database: 'failing', kms: 'ok' });
    } finally {
      await ctx.cleanup();
    }
  });
});
