import { loadConfig } from '../../server/config';
import { createDataSource } from '../../entities/data-source';

/** The operational settings are validated at start-up and reach the parts they bound. */
describe('operational settings', () => {
  test('defaults', () => {
    const c = loadConfig({});
    expect(c.server).toMatchObject({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000 });
    expect(c.database.pool).toEqual({ size: 10, acquireTimeoutMs: 5000 });
    expect(c.health).toEqual({ maxEventLoopDelayMs: 2000, maxPoolStallMs: 30_000, readyTimeoutMs: 2000, readyKmsCacheMs: 5000 });
  });

  test('out-of-range values stop start-up naming the setting', () => {
    for (const [name, value] of [
      ['CS_DB_POOL_SIZE', '1'],
      ['CS_DB_ACQUIRE_TIMEOUT_MS', '0'],
      ['CS_HEADERS_TIMEOUT_MS', 'soon'],
      ['CS_REQUEST_TIMEOUT_MS', '-5'],
      ['CS_KEEP_ALIVE_TIMEOUT_MS', '10'],
      ['CS_HEALTH_MAX_EVENT_LOOP_DELAY_MS', '1.5'],
      ['CS_HEALTH_MAX_POOL_STALL_MS', '0'],
      ['CS_READY_TIMEOUT_MS', '99999999'],
      ['CS_READY_KMS_CACHE_MS', '-1'],
      ['CS_KMS_DEADLINE_MS', '0'],
    ]) {
      expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(name));
    }
  });

  test('a request timeout below the headers timeout bounds both (Node requires headers <= request)', () => {
    const c = loadConfig({ CS_HEADERS_TIMEOUT_MS: '20000', CS_REQUEST_TIMEOUT_MS: '5000' });
    expect(c.server).toMatchObject({ headersTimeoutMs: 5000, requestTimeoutMs: 5000 });
  });

  test('pool settings reach the PostgreSQL and MariaDB drivers', () => {
    const pool = { size: 7, acquireTimeoutMs: 1234 };
    const pg = createDataSource({ type: 'postgres', url: 'postgres://x@127.0.0.1/db', embedded: false, migrateOnStart: false, pool }).options;
    expect(pg).toMatchObject({ poolSize: 7, connectTimeoutMS: 1234 });
    const my = createDataSource({ type: 'mysql', url: 'mysql://x@127.0.0.1/db', embedded: false, migrateOnStart: false, pool }).options;
    expect(my).toMatchObject({ poolSize: 7, connectTimeout: 1234 });
  });
});
