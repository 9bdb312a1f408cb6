import { Client } from 'pg';
import { createConnection } from 'mysql2/promise';
import type { EntityManager } from 'typeorm';
import { UsersRepository } from '../../server/repositories/users';
import { newUser } from '../scim/support';
import { faultFixture, type FaultFixture } from './fixture';

/**
 * The database drops a request's connection in the middle of its transaction (backend
 * terminated: failover, restart, an operator's kill). The client gets a prompt 503 + Retry-After
 * in SCIM's error format, nothing of the transaction is visible, and the next request is served
 * on a fresh connection. SQLite is in-process: it has no connection to lose.
 */
describe.each(['postgres', 'mariadb'] as const)('database connection dropped mid-transaction (%s)', (kind) => {
  let f: FaultFixture;
  beforeAll(async () => {
    f = await faultFixture(kind);
  });
  afterAll(async () => f?.close());

  /** The server-side id of the connection a manager runs on, and a way to kill it from outside. */
  const backendId = async (m: EntityManager): Promise<number> =>
    Number((await m.query(kind === 'postgres' ? 'SELECT pg_backend_pid() AS id' : 'SELECT CONNECTION_ID() AS id'))[0].id);
  const killBackend = async (id: number): Promise<void> => {
    if (kind === 'postgres') {
      const c = new Client({ connectionString: f.db.url });
      await c.connect();
      try {
        await c.query('SELECT pg_terminate_backend($1)', [id]);
      } finally {
        await c.end();
      }
    } else {
      const c = await createConnection(f.db.url);
      try {
        await c.query(`KILL ${id}`);
      } finally {
        await c.end();
      }
    }
  };

  test('SCIM create whose connection is killed after its INSERT: 503, no user, next create succeeds', async () => {
    const original = UsersRepository.prototype.insert;
    let killed = false;
    // Inside the transaction, right after the user's rows were written: kill this connection.
    const spy = jest.spyOn(UsersRepository.prototype, 'insert').mockImplementation(async function (this: UsersRepository, ...args) {
      await original.apply(this, args);
      if (!killed) {
        killed = true;
        const m = (this as unknown as { m: EntityManager }).m;
        await killBackend(await backendId(m));
        await new Promise((r) => setTimeout(r, 100)); // let the driver see the socket close
      }
    });
    try {
      const start = performance.now();
      const res = await f.scimPost('/Users', newUser('dropped@example.com'));
      expect(performance.now() - start).toBeLessThan(5000);
      expect(killed).toBe(true);
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('2');
      expect(res.body.schemas).toEqual(['urn:ietf:params:scim:api:messages:2.0:Error']);
      expect(JSON.stringify(res.body)).not.toMatch(/terminat|administrator|KILL|ECONN|query/i);
    } finally {
      spy.mockRestore();
    }
    const found = await f.scimGet(`/Users?filter=${encodeURIComponent('userName eq "dropped@example.com"')}`).expect(200);
    expect(found.body.totalResults).toBe(0);
    const orphanKeys: unknown[] = await f.store.dataSource.query('SELECT user_id FROM user_keys WHERE user_id NOT IN (SELECT id FROM users)');
    expect(orphanKeys).toEqual([]);
    // The pool replaced the dead connection: the same request now succeeds.
    await f.scimPost('/Users', newUser('dropped@example.com')).expect(201);
    expect((await f.scimGet('/Users?count=1')).status).toBe(200);
  });
});
