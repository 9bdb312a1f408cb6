/**
 * On PostgreSQL the rate-limit counters commit without waiting for the WAL flush
 * (synchronous_commit off for their own transaction only), while audit rows keep the server's
 * durable commit: a trigger notes the setting each row was written under.
 */
import { driverOf } from '../../server/repositories/raw-driver';
import { rateLimitHits } from '../../server/repositories/rate-limit-hits';
import { newUser, scimContext, type ScimTestContext } from './support';

const NOTE_COMMIT_MODE = [
  'CREATE TABLE commit_modes (tbl text NOT NULL, mode text NOT NULL)',
  `CREATE FUNCTION note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN INSERT INTO commit_modes VALUES (TG_TABLE_NAME, current_setting('synchronous_commit')); RETURN NULL; END $$`,
  'CREATE TRIGGER note_commit_mode AFTER INSERT OR UPDATE OR DELETE ON rate_limit_counters FOR EACH ROW EXECUTE FUNCTION note_commit_mode()',
  'CREATE TRIGGER note_commit_mode AFTER INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION note_commit_mode()',
];

describe('rate-limit commits on PostgreSQL', () => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext('postgres', { CS_SCIM_RATE_LIMIT_PER_MINUTE: '1000' });
    for (const sql of NOTE_COMMIT_MODE) await ctx.store.dataSource.query(sql);
  });
  afterAll(async () => ctx?.cleanup());

  const modes = async (tbl: string) =>
    ((await ctx.store.dataSource.query('SELECT mode FROM commit_modes WHERE tbl = $1', [tbl])) as { mode: string }[]).map((r) => r.mode);

  test('counter writes and prunes run with synchronous_commit off, audit rows with it on, and nothing leaks into the pooled sessions', async () => {
    await ctx.post('/Users', newUser('durable@example.com')).expect(201);
    await Promise.all(Array.from({ length: 8 }, () => ctx.get('/Users?filter=' + encodeURIComponent('userName eq "durable@example.com"')).expect(200)));
    await ctx.post('/Users', newUser('durable-2@example.com')).expect(201);
    await rateLimitHits(ctx.store).deleteOlderThan(Math.floor(Date.now() / 60_000) + 2); // the periodic prune
    expect(await ctx.store.dataSource.query('SELECT * FROM rate_limit_counters')).toEqual([]);

    const counterModes = await modes('rate_limit_counters');
    expect(counterModes.length).toBeGreaterThanOrEqual(2); // upserts and the prune's deletes
    expect(new Set(counterModes)).toEqual(new Set(['off']));
    const auditModes = await modes('audit_events');
    expect(auditModes.length).toBeGreaterThanOrEqual(2);
    expect(new Set(auditModes)).toEqual(new Set(['on']));

    // The setting was transaction-local: every connection in the pool is back on the durable default.
    const { totalCount } = driverOf(ctx.store).pg as unknown as { totalCount: number };
    expect(totalCount).toBeGreaterThanOrEqual(1);
    const runners = Array.from({ length: totalCount }, () => ctx.store.dataSource.createQueryRunner());
    try {
      await Promise.all(runners.map((r) => r.connect())); // all held at once: each is a different connection
      for (const r of runners) expect(await r.query('SHOW synchronous_commit')).toEqual([{ synchronous_commit: 'on' }]);
    } finally {
      await Promise.all(runners.map((r) => r.release()));
    }
  });
});
