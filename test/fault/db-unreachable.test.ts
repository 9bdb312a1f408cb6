import { randomBytes } from 'node:crypto';
import pino from 'pino';
import request from 'supertest';
import { boot } from '../../server/boot';
import { loadConfig } from '../../server/config';
import { createApp } from '../../server/http/app';
import { ownWrites } from '../../server/repositories/runner';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { TokenService } from '../../scim/tokens';
import { DATABASE_FACTORIES, type TestDatabase } from '../support/databases';
import { newUser } from '../scim/support';
import { SLACK_MS } from './fixture';
import { TcpProxy } from './tcp-proxy';
import { timed } from './support';

const ACQUIRE_TIMEOUT_MS = 1000;

/**
 * The database goes away (its port stops answering, open connections are cut) and comes back.
 * Meanwhile reads and writes get 503 + Retry-After promptly (not a 500, not a hang), readiness
 * reports the database, liveness stays up (a restart would not help), and once the database is
 * back the same process serves again on fresh connections.
 */
describe.each(['postgres', 'mariadb'] as const)('database unreachable (%s)', (kind) => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let deps: Awaited<ReturnType<typeof boot>>;
  let app: ReturnType<typeof createApp>;
  let token: string;
  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
    const url = new URL(db.url);
    proxy = await new TcpProxy(Number(url.port)).start();
    url.port = String(proxy.port);
    const config = loadConfig({ CS_DATABASE_URL: url.toString(), CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64'), CS_DB_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS), CS_READY_TIMEOUT_MS: '1000', CS_HEALTH_MAX_POOL_STALL_MS: '1000' });
    deps = await boot(config, pino({ level: 'silent' }), { migrate: true });
    app = createApp(deps);
    ({ token } = await new TokenService(ownWrites(deps.store, (m) => new ApiTokenRepository(m))).create({ name: 'idp', scope: 'scim' }));
  });
  afterAll(async () => {
    await deps?.close();
    await proxy?.close();
    await db?.drop();
  });

  const scim = (method: 'get' | 'post', path: string, body?: unknown) => {
    const t = request(app)[method](`/scim/v2${path}`).set('Authorization', `Bearer ${token}`);
    return body === undefined ? t : t.set('Content-Type', 'application/scim+json').send(JSON.stringify(body));
  };

  test('503 + Retry-After while it is gone; served again when it is back', async () => {
    await scim('post', '/Users', newUser('before@example.com')).expect(201);
    await proxy.kill();
    try {
      for (const [method, path, body] of [['get', '/Users?count=5', undefined], ['post', '/Users', newUser('during@example.com')]] as const) {
        const r = await timed(Promise.resolve(scim(method, path, body)));
        expect(r.ms).toBeLessThan(ACQUIRE_TIMEOUT_MS + SLACK_MS);
        expect(r.value?.status).toBe(503);
        expect(Number(r.value?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        expect(r.value?.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '503' });
        expect(JSON.stringify(r.value?.body)).not.toMatch(/ECONN|127\.0\.0\.1|refused/i);
      }
      const ready = await request(app).get('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.database).toBe('failing');
      // Longer than the pool-stall bound, with requests failing: still alive, as a restart would not help.
      await new Promise((r) => setTimeout(r, 1100));
      expect((await scim('get', '/Users?count=1')).status).toBe(503);
      expect((await request(app).get('/healthz')).status).toBe(200);
    } finally {
      await proxy.restore();
    }
    const list = await scim('get', `/Users?filter=${encodeURIComponent('userName eq "during@example.com"')}`).expect(200);
    expect(list.body.totalResults).toBe(0);
    await scim('post', '/Users', newUser('after@example.com')).expect(201);
    await request(app).get('/readyz').expect(200);
  });
});
