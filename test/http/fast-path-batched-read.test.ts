import { Agent, createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import request from 'supertest';
import { createRequestListener } from '../../server/http/app';
import { batchLoader } from '../../server/repositories/batch-loader';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { TokenService } from '../../scim/tokens';
import { ownWrites } from '../../server/repositories/runner';
import { testDatabaseNames } from '../support/databases';
import { ENTRA_DISABLE_USER } from '../scim/idp-bodies';
import { createAuthFixture, signInForToken } from '../support/auth-fixture';

/**
 * The key API's user read is batched on PostgreSQL/MariaDB (server/repositories/batch-loader.ts):
 * the reads of one event-loop turn share one statement. What must hold: a read that starts after a
 * write committed sees it — it never joins a batch already sent — so a SCIM deactivation refuses
 * every request that starts after its response, even with 50 requests in flight.
 */
describe('batch loader', () => {
  const deferred = () => {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  };

  test('lookups of one turn share one load (keys once each); every caller gets its own value', async () => {
    const loads: string[][] = [];
    const load = batchLoader(async (keys: string[]) => {
      loads.push(keys);
      return new Map(keys.filter((k) => k !== 'missing').map((k) => [k, `v-${k}`]));
    });
    const got = await Promise.all(['a', 'b', 'a', 'c', 'missing'].map(load));
    expect(got).toEqual(['v-a', 'v-b', 'v-a', 'v-c', undefined]);
    expect(loads).toEqual([['a', 'b', 'c', 'missing']]);
  });

  test('a lookup made while a batch is being read starts a new batch and reads after it', async () => {
    const gate = deferred();
    let version = 1;
    const loads: { keys: string[]; version: number }[] = [];
    const load = batchLoader(async (keys: string[]) => {
      const seen = version; // what the database holds when the statement runs
      loads.push({ keys, version: seen });
      if (loads.length === 1) await gate.promise;
      return new Map(keys.map((k) => [k, seen]));
    });
    const first = load('u');
    await new Promise((r) => setImmediate(r)); // the first batch is sent
    version = 2; // a write commits meanwhile
    const second = load('u');
    gate.resolve();
    expect(await first).toBe(1);
    expect(await second).toBe(2);
    expect(loads.map((l) => l.version)).toEqual([1, 2]);
  });

  test('a failed batch is retried key by key: only the key that fails fails its callers', async () => {
    const loads: string[][] = [];
    const load = batchLoader(async (keys: string[]) => {
      loads.push(keys);
      if (keys.includes('bad')) throw new Error(`statement failed for ${keys.join(',')}`);
      return new Map(keys.map((k) => [k, k.toUpperCase()]));
    });
    const results = await Promise.allSettled(['x', 'bad', 'y'].map(load));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.message).toBe('statement failed for bad');
    expect(loads).toEqual([['x', 'bad', 'y'], ['x'], ['bad'], ['y']]);
  });

  test('a batch that reaches its cap is sent at once', async () => {
    const loads: number[] = [];
    const load = batchLoader(async (keys: number[]) => {
      loads.push(keys.length);
      return new Map(keys.map((k) => [k, k]));
    }, 4);
    await Promise.all(Array.from({ length: 10 }, (_, i) => load(i)));
    expect(loads).toEqual([4, 4, 2]);
  });
});

describe.each(testDatabaseNames())('deactivation while 50 unwraps are in flight (%s)', (kind) => {
  test('every request that starts after the SCIM response is refused; reads were batched', async () => {
    const f = await createAuthFixture(kind);
    const agent = new Agent({ keepAlive: true, maxSockets: 50 });
    let server: Server | undefined;
    const driver = f.store.dataSource.driver as unknown as { master?: { query: (...a: unknown[]) => unknown }; pool?: { execute: (...a: unknown[]) => unknown } };
    // Counts the user reads the database receives (PostgreSQL / MariaDB); the calls go through.
    const reads: number[] = [];
    if (kind === 'postgres') {
      const pool = driver.master!;
      const query = pool.query.bind(pool);
      pool.query = (q: unknown, ...rest: unknown[]) => {
        const named = q as { name?: string; values?: unknown[] };
        if (named?.name === 'cs_hot_user_keys_any') reads.push((named.values![0] as string[]).length);
        return query(q, ...rest);
      };
    } else if (kind === 'mariadb') {
      const pool = driver.pool!;
      const execute = pool.execute.bind(pool);
      pool.execute = (sql: unknown, values: unknown, ...rest: unknown[]) => {
        if (typeof sql === 'string' && sql.includes('FROM users u LEFT JOIN user_keys')) reads.push(new Set(values as string[]).size);
        return execute(sql, values, ...rest);
      };
    }
    try {
      const alice = await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' });
      const token = await signInForToken(f, { nameId: 'alice@example.com' });
      const scim = new TokenService(ownWrites(f.store, (m) => new ApiTokenRepository(m)));
      const { token: scimToken } = await scim.create({ name: 'idp', scope: 'scim' });
      server = createServer(createRequestListener(f));
      await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
      const port = (server.address() as AddressInfo).port;
      const body = JSON.stringify({ wrappedPasswordKey: alice.keys.wrappedPasswordKey });
      const unwrap = () =>
        new Promise<{ status: number; key: boolean }>((resolve, reject) => {
          const req = httpRequest(
            { host: '127.0.0.1', port, agent, method: 'POST', path: '/api/keys/password-key/unwrap', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('end', () => resolve({ status: res.statusCode!, key: Buffer.concat(chunks).toString().includes('passwordKey') }));
            },
          );
          req.on('error', reject);
          req.end(body);
        });

      const results: { start: number; status: number; key: boolean }[] = [];
      let deactivatedAt = Infinity;
      let after = 0;
      const loop = async () => {
        // Each loop keeps one request in flight until 4 of its own started after the deactivation.
        for (let mine = 0; mine < 4; ) {
          const start = performance.now();
          const r = await unwrap();
          results.push({ start, ...r });
          if (start > deactivatedAt) {
            mine++;
            after++;
          }
        }
      };
      const loops = Array.from({ length: 50 }, loop);
      while (results.filter((r) => r.status === 200).length < 100) await new Promise((r) => setTimeout(r, 5));
      const patch = await request(f.app).patch(`/scim/v2/Users/${alice.id}`).set('Authorization', `Bearer ${scimToken}`).set('Content-Type', 'application/scim+json').send(ENTRA_DISABLE_USER);
      expect(patch.status).toBe(200);
      deactivatedAt = performance.now();
      await Promise.all(loops);

      const started = results.filter((r) => r.start > deactivatedAt);
      expect(after).toBe(200);
      expect(started).toHaveLength(200);
      expect(started.filter((r) => r.status !== 403)).toEqual([]);
      expect(started.some((r) => r.key)).toBe(false);
      expect(results.filter((r) => r.start < deactivatedAt && r.status === 200).length).toBeGreaterThanOrEqual(100);
      if (kind !== 'sqlite') {
        // Batched: one user read per request without it; concurrent requests (all alice's) share one.
        expect(reads.length).toBeGreaterThan(0);
        expect(reads.length).toBeLessThan(results.length * 0.8);
      }
    } finally {
      agent.destroy();
      if (server) await new Promise((r) => server!.close(r));
      await f.cleanupAll();
    }
  });
});
