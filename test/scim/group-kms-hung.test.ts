import request from 'supertest';
import { Client } from 'pg';
import { createConnection } from 'mysql2/promise';
import { GROUP_SCHEMA, PATCH, newUser, scimContext, type ScimTestContext } from './support';

/**
 * Fault: the KMS hangs while 12 PATCHes each add a member to one group (issue 9 items 1–2).
 * Nothing may wait on it while holding a database connection or SQLite's writer: reads, other
 * writes and /readyz's database check go on answering, PostgreSQL shows no session "idle in
 * transaction", and once the KMS answers again every add succeeds.
 * Likewise for a hung wrap: a removal that rotates the group's keys and a group create.
 */
describe.each(['postgres', 'mariadb', 'sqlite'] as const)('a hung KMS during concurrent member adds (%s)', (kind) => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  /** Sessions of this database inside a transaction and waiting for their client (PostgreSQL's "idle in transaction"). */
  async function idleInTransaction(): Promise<number> {
    const name = new URL(ctx.db.url).pathname.slice(1);
    if (kind === 'mariadb') {
      // InnoDB refreshes what INNODB_TRX shows at most every 100 ms.
      await new Promise((r) => setTimeout(r, 150));
      const c = await createConnection(ctx.db.url);
      try {
        const [rows] = await c.query("SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id WHERE p.DB = ? AND p.COMMAND = 'Sleep'", [name]);
        return Number((rows as { n: unknown }[])[0]!.n);
      } finally {
        await c.end();
      }
    }
    const c = new Client({ connectionString: ctx.db.url });
    await c.connect();
    try {
      const r = await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'", [name]);
      return r.rows[0].n as number;
    } finally {
      await c.end();
    }
  }

  test('reads, writes and readiness answer while the KMS hangs; the adds succeed when it returns', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await ctx.post('/Users', newUser(`hung-${i}@example.com`)).expect(201)).body.id);
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Hung KMS' }).expect(201)).body;

    const adapter = ctx.kms.forUri(ctx.config.kms.kekUri);
    const unwrap = adapter.unwrap.bind(adapter);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let waiting = 0;
    const spy = jest.spyOn(adapter, 'unwrap').mockImplementation(async (...args) => {
      waiting++;
      await gate; // the KMS does not answer until released
      return unwrap(...args);
    });
    try {
      const adds = ids.map((id) =>
        ctx.patch(`/Groups/${g.id}`, { schemas: [PATCH], Operations: [{ op: 'add', path: 'members', value: [{ value: id }] }] }).then((r) => r),
      );
      for (let i = 0; i < 500 && waiting < 12; i++) await new Promise((r) => setTimeout(r, 20));
      expect(waiting).toBe(12); // every PATCH is parked on the KMS

      await ctx.get(`/Groups/${g.id}`).expect(200);
      await ctx.get('/Users?count=5').expect(200);
      // A write that needs no unwrap (a user create wraps; wrap is not hung) still commits.
      await ctx.post('/Users', newUser('during-outage@example.com')).expect(201);
      const ready = await request(ctx.app).get('/readyz');
      expect(ready.body.checks.database).toBe('ok');
      if (kind !== 'sqlite') expect(await idleInTransaction()).toBe(0);

      release();
      const results = await Promise.all(adds);
      expect(results.map((r) => r.status)).toEqual(ids.map(() => 204));
      const members = ((await ctx.get(`/Groups/${g.id}`).expect(200)).body.members as { value: string }[]).map((m) => m.value).sort();
      expect(members).toEqual([...ids].sort());
    } finally {
      release();
      spy.mockRestore();
    }
  });

  test('a removal that rotates and a group create wait on a hung KMS wrap holding no transaction; both commit when it returns', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await ctx.post('/Users', newUser(`hung-wrap-${i}@example.com`)).expect(201)).body.id);
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Hung wrap', members: ids.map((value) => ({ value })) }).expect(201)).body;

    const adapter = ctx.kms.forUri(ctx.config.kms.kekUri);
    const wrap = adapter.wrap.bind(adapter);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let waiting = 0;
    const spy = jest.spyOn(adapter, 'wrap').mockImplementation(async (...args) => {
      waiting++;
      await gate; // the KMS does not answer until released
      return wrap(...args);
    });
    try {
      const removal = ctx.patch(`/Groups/${g.id}`, { schemas: [PATCH], Operations: [{ op: 'remove', path: `members[value eq "${ids[0]}"]` }] }).then((r) => r);
      const create = ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Hung wrap 2', members: [{ value: ids[1] }] }).then((r) => r);
      for (let i = 0; i < 500 && waiting < 2; i++) await new Promise((r) => setTimeout(r, 20));
      expect(waiting).toBe(2); // the rotation's wrap and the create's wrap are parked on the KMS

      const before = ((await ctx.get(`/Groups/${g.id}`).expect(200)).body.members as { value: string }[]).map((m) => m.value).sort();
      expect(before).toEqual([...ids].sort());
      await ctx.get('/Users?count=5').expect(200);
      const ready = await request(ctx.app).get('/readyz');
      expect(ready.body.checks.database).toBe('ok');
      if (kind !== 'sqlite') expect(await idleInTransaction()).toBe(0);

      release();
      const removed = await removal;
      expect(removed.status).toBe(204);
      expect((await create).status).toBe(201);
      const group = (await ctx.get(`/Groups/${g.id}`).expect(200)).body;
      expect(group['urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:GroupKeys'].keyVersion).toBe(2);
      const after = (group.members as { value: string }[]).map((m) => m.value).sort();
      expect(after).toEqual(ids.slice(1).sort());
    } finally {
      release();
      spy.mockRestore();
    }
  });
});
