import { UsersRepository } from '../../server/repositories/users';
import { newUser } from '../scim/support';
import request from 'supertest';
import { ENTRA_DISABLE_USER, entraCreateUser as entraUser } from '../scim/idp-bodies';
import { entraAddMember, entraCreateGroup } from '../bench/http/scim-requests';
import { GroupsRepository } from '../../server/repositories/groups';
import { signedInUser } from '../support/auth-fixture';
import { faultFixture, type FaultFixture } from './fixture';
import { killBackend as kill, sentWhileDropping } from './kill-connection';

/**
 * The database drops a request's connection in the middle of its transaction (backend
 * terminated: failover, restart, an operator's kill). The client gets a prompt 503 + Retry-After
 * in SCIM's error format, nothing of the transaction is visible, and the next request is served
 * on a fresh connection. SQLite is in-process: it has no connection to lose.
 * A SCIM create runs on the driver (hot-queries.ts createUser) unless an outbox event joins its
 * transaction (here: the backend change feed), then through TypeORM: both are covered.
 */
describe.each(['postgres', 'mariadb'] as const)('database connection dropped mid-transaction (%s)', (kind) => {
  let f: FaultFixture;
  let withFeed: FaultFixture;
  beforeAll(async () => {
    f = await faultFixture(kind);
    withFeed = await faultFixture(kind, { CS_BACKEND_CHANGE_FEED: 'true' });
  });
  afterAll(async () => {
    await f?.close();
    await withFeed?.close();
  });

  const killBackend = (id: number) => kill(kind, f.db.url, id);

  /** 503 in SCIM's error format, promptly, and nothing of the create in the database. */
  const expectDropped = async (fx: FaultFixture, res: { status: number; headers: Record<string, string>; body: { schemas?: unknown } }, userName: string) => {
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('2');
    expect(res.body.schemas).toEqual(['urn:ietf:params:scim:api:messages:2.0:Error']);
    expect(JSON.stringify(res.body)).not.toMatch(/terminat|administrator|KILL|ECONN|query/i);
    const found = await fx.scimGet(`/Users?filter=${encodeURIComponent(`userName eq "${userName}"`)}`).expect(200);
    expect(found.body.totalResults).toBe(0);
    const orphanKeys: unknown[] = await fx.store.dataSource.query('SELECT user_id FROM user_keys WHERE user_id NOT IN (SELECT id FROM users)');
    expect(orphanKeys).toEqual([]);
  };

  test('SCIM create (on the driver) killed after writing its rows, waiting for the audit chain head: 503, no user, next create succeeds', async () => {
    // Another session holds the chain head: the create writes its user and key rows, then waits
    // for the head (every writer takes it last). Kill the create's connection while it waits.
    const holder = f.store.dataSource.createQueryRunner();
    await holder.startTransaction();
    let res: Awaited<ReturnType<FaultFixture['scimPost']>>;
    try {
      await holder.query('SELECT seq FROM audit_chain_head WHERE id = 1 FOR UPDATE');
      const pending = f.scimPost('/Users', entraUser('dropped-hot@example.com')).then((r) => r);
      const waiting = async (): Promise<number | undefined> => {
        const rows: { id: string | number }[] =
          kind === 'postgres'
            ? await f.store.dataSource.query("SELECT pid AS id FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%audit_chain_head%' AND pid <> pg_backend_pid()")
            : await f.store.dataSource.query("SELECT ID AS id FROM information_schema.PROCESSLIST WHERE INFO LIKE '%audit_chain_head%FOR UPDATE%' AND ID <> CONNECTION_ID()");
        return rows.length ? Number(rows[0].id) : undefined;
      };
      let id: number | undefined;
      for (let i = 0; i < 100 && id === undefined; i++) {
        id = await waiting();
        if (id === undefined) await new Promise((r) => setTimeout(r, 50));
      }
      expect(id).toBeDefined();
      const start = performance.now();
      await killBackend(id!);
      res = await pending;
      expect(performance.now() - start).toBeLessThan(5000);
    } finally {
      await holder.rollbackTransaction().catch(() => undefined);
      await holder.release();
    }
    await expectDropped(f, res, 'dropped-hot@example.com');
    // The pool replaced the dead connection: the same request now succeeds, with its keys.
    const created = await f.scimPost('/Users', entraUser('dropped-hot@example.com')).expect(201);
    const keys: unknown[] = await f.store.dataSource.query(`SELECT user_id FROM user_keys WHERE user_id = '${String(created.body.id)}'`);
    expect(keys).toHaveLength(1);
  });

  test('SCIM create (through TypeORM, change feed on) whose connection is killed after its INSERT: 503, no user, next create succeeds', async () => {
    const f = withFeed;
    const res = await sentWhileDropping(kind, f.db.url, UsersRepository.prototype, 'insert', () => f.scimPost('/Users', newUser('dropped@example.com')));
    await expectDropped(f, res, 'dropped@example.com');
    // The pool replaced the dead connection: the same request now succeeds.
    await f.scimPost('/Users', newUser('dropped@example.com')).expect(201);
    expect((await f.scimGet('/Users?count=1')).status).toBe(200);
  });

  test("SCIM deactivation (Entra ID's PATCH active=false) killed after its UPDATE: 503, still active, the retry deactivates and the key API refuses", async () => {
    const alice = await signedInUser(f, 'dropped-deactivate@example.com');
    const me = () => request(f.app).get('/api/keys/me').set('Authorization', `Bearer ${alice.token}`);
    await me().expect(200);
    const disable = () => f.scimPatch(`/Users/${alice.id}`, ENTRA_DISABLE_USER);
    const res = await sentWhileDropping(kind, f.db.url, UsersRepository.prototype, 'update', disable);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
    expect(res.body.schemas).toEqual(['urn:ietf:params:scim:api:messages:2.0:Error']);
    // Nothing of it committed; the IdP's retry (Entra ID retries a 503) deactivates.
    expect((await f.scimGet(`/Users/${alice.id}`).expect(200)).body.active).toBe(true);
    await me().expect(200);
    expect((await disable().expect(200)).body.active).toBe(false);
    expect((await me().expect(403)).body.code).toBe('user_inactive');
  });

  test('SCIM DELETE /Groups killed after its DELETE: 503, the group, its members and keys still there; the retry deletes it', async () => {
    const member = (await f.scimPost('/Users', entraUser('dropped-group-member@example.com')).expect(201)).body.id as string;
    const g = (await f.scimPost('/Groups', entraCreateGroup('Dropped delete', 'dropped-delete')).expect(201)).body.id as string;
    await f.scimPatch(`/Groups/${g}`, entraAddMember(member)).expect(204);
    // The group as SCIM shows it, but for meta.location (supertest's port changes per request).
    const shown = async () => {
      const { meta, ...rest } = (await f.scimGet(`/Groups/${g}`).expect(200)).body as { meta: Record<string, unknown> };
      return { ...rest, meta: { ...meta, location: undefined } };
    };
    const before = await shown();
    const res = await sentWhileDropping(kind, f.db.url, GroupsRepository.prototype, 'delete', () => f.scimDelete(`/Groups/${g}`));
    expect(res.status).toBe(503);
    expect(res.body.schemas).toEqual(['urn:ietf:params:scim:api:messages:2.0:Error']);
    expect(await shown()).toEqual(before);
    await f.scimDelete(`/Groups/${g}`).expect(204);
    await f.scimGet(`/Groups/${g}`).expect(404);
    const orphans: unknown[] = await f.store.dataSource.query(`SELECT group_id FROM group_members WHERE group_id = '${g}' UNION ALL SELECT group_id FROM group_key_versions WHERE group_id = '${g}'`);
    expect(orphans).toEqual([]);
  });
});
