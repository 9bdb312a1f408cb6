import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { SpyAdapter } from '../support/spy-kms';
import { createApp } from '../../server/http/app';
import { KmsUnavailableError } from '../../server/errors';
import { testDatabaseNames } from '../support/databases';
import { SwitchableKms } from '../fault/support';

describe('health and error responses', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
  });
  afterAll(async () => ctx?.cleanup());

  test('GET /healthz answers while the process lives', async () => {
    const r = await request(ctx.app).get('/healthz').expect(200);
    expect(r.headers['cache-control']).toBe('no-store');
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

describe('liveness: a wedged process fails /healthz', () => {
  test('an event loop blocked longer than CS_HEALTH_MAX_EVENT_LOOP_DELAY_MS fails the next probe only', async () => {
    const ctx = await createTestContext('sqlite', { CS_HEALTH_MAX_EVENT_LOOP_DELAY_MS: '300' });
    try {
      // Boot's own synchronous work (SQLite migrations) can hold the loop past 300 ms on a loaded
      // machine, which the first probe reports and clears; the one after it must be healthy.
      await request(ctx.app).get('/healthz');
      await request(ctx.app).get('/healthz').expect(200);
      const until = Date.now() + 800;
      while (Date.now() < until); // a synchronous stall, as a runaway computation would cause
      await new Promise((r) => setTimeout(r, 50)); // the probe arrives after the stall
      const r = await request(ctx.app).get('/healthz').expect(503);
      expect(r.body).toEqual({ status: 'failing', checks: { eventLoop: 'failing', databasePool: 'ok' } });
      await request(ctx.app).get('/healthz').expect(200);
    } finally {
      await ctx.cleanup();
    }
  });
});

describe.each(testDatabaseNames())('liveness: a stuck database pool fails /healthz (%s)', (kind) => {
  test('requests waiting with no connection handed out beyond the bound → 503; a free connection → 200 again', async () => {
    const ctx = await createTestContext(kind, { CS_DB_POOL_SIZE: '2', CS_DB_ACQUIRE_TIMEOUT_MS: '300', CS_HEALTH_MAX_POOL_STALL_MS: '2000' });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const holders: Promise<unknown>[] = [];
    try {
      await request(ctx.app).get('/healthz').expect(200);
      // Every connection held by a transaction that does not end (SQLite has one).
      const slots = kind === 'sqlite' ? 1 : 2;
      let opened = 0;
      for (let i = 0; i < slots; i++) holders.push(ctx.store.transaction(async (t) => { await t.manager.query('SELECT 1'); opened++; await held; }));
      while (opened < slots) await new Promise((r) => setTimeout(r, 10));
      // A waiter gets a 503-class error after the acquire timeout, and the pool counts as wanted.
      const waited = await ctx.store.transaction(async () => 'ran').catch((e) => e);
      expect(waited).toMatchObject({ status: 503, code: 'unavailable' });
      expect(waited.retryAfter).toBeGreaterThanOrEqual(1);
      await request(ctx.app).get('/healthz').expect(200); // not yet beyond the stall bound
      await new Promise((r) => setTimeout(r, 2100));
      const r = await request(ctx.app).get('/healthz').expect(503);
      expect(r.body.checks).toEqual({ eventLoop: 'ok', databasePool: 'failing' });
      release();
      await Promise.all(holders);
      await ctx.store.transaction(async (t) => t.manager.query('SELECT 1'));
      await request(ctx.app).get('/healthz').expect(200);
    } finally {
      release();
      await Promise.allSettled(holders);
      await ctx.cleanup();
    }
  });
});

describe('readiness notices a hung KMS within one probe interval', () => {
  test('a KMS that stops answering turns /readyz 503 on the first probe after the short cache, within CS_READY_TIMEOUT_MS', async () => {
    const ctx = await createTestContext('sqlite', { CS_READY_TIMEOUT_MS: '300', CS_READY_KMS_CACHE_MS: '200' });
    const kms = new SwitchableKms();
    try {
      const app = createApp({ ...ctx, kms: kms.registry(['local://default']) });
      await request(app).get('/readyz').expect(200);
      kms.hangCalls();
      await new Promise((r) => setTimeout(r, 250));
      const start = Date.now();
      const r = await request(app).get('/readyz').expect(503);
      expect(Date.now() - start).toBeLessThan(300 + 500);
      expect(r.body.checks).toEqual({ database: 'ok', kms: 'failing' });
      expect(r.headers['retry-after']).toBe('5');
      kms.resume();
      await new Promise((r2) => setTimeout(r2, 250));
      await request(app).get('/readyz').expect(200);
    } finally {
      kms.resume();
      await ctx.cleanup();
    }
  });
});
