/**
 * What every SCIM request pays before its own work — the token lookup and the per-token rate limit,
 * both straight on the driver, batched/coalesced across concurrent requests (issue 10) — keeps its
 * guarantees: a revocation refuses the very next request, on every replica; the limit counts every
 * request exactly, shared by replicas through the database; a dropped connection is a 503.
 */
import { Client } from 'pg';
import { createConnection } from 'mysql2/promise';
import pino from 'pino';
import { boot } from '../../server/boot';
import { createApp } from '../../server/http/app';
import { RateLimitEntity } from '../../entities';
import { ownWrites } from '../../server/repositories/runner';
import { rateLimitHits } from '../../server/repositories/rate-limit-hits';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { tokenReads } from '../../scim/repositories/token-reads';
import { TokenService } from '../../scim/tokens';
import { listen, type Listening } from '../support/http-server';
import { scimContext, type ScimTestContext } from './support';

const LIMIT = 25;
const SCIM_ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
// better-sqlite3 ships no type declarations; only a second connection's exec and close are needed.
const Database = require('better-sqlite3') as new (path: string) => { exec(sql: string): void; close(): void };

type Reply = { status: number; headers: Headers; body: Record<string, unknown> };

/** The counters are per one-minute window: start a burst well inside one. */
async function awayFromMinuteEdge(): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 8000) await new Promise((r) => setTimeout(r, left + 200));
}

describe.each(['sqlite', 'postgres', 'mariadb'] as const)('SCIM token check and rate limit on %s', (kind) => {
  let ctx: ScimTestContext;
  let replica: Awaited<ReturnType<typeof boot>>;
  let a: Listening;
  let b: Listening;
  beforeAll(async () => {
    ctx = await scimContext(kind, { CS_SCIM_RATE_LIMIT_PER_MINUTE: String(LIMIT), CS_DB_ACQUIRE_TIMEOUT_MS: '1000' });
    // A second replica: its own Store (pool, statements, batches) on the same database.
    replica = await boot(ctx.config, pino({ level: 'silent' }), { migrate: false });
    a = await listen(ctx.app);
    b = await listen(createApp(replica));
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await replica?.close();
    await ctx?.cleanup();
  });

  const get = async (server: Listening, token: string, path = '/ServiceProviderConfig'): Promise<Reply> => {
    const r = await fetch(`${server.url}/scim/v2${path}`, { headers: { Authorization: `Bearer ${token}` } });
    return { status: r.status, headers: r.headers, body: (await r.json()) as Record<string, unknown> };
  };
  const burst = (server: Listening, token: string, n: number) => Array.from({ length: n }, () => get(server, token));
  const hitsOf = async (tokenId: string) =>
    (await ctx.store.dataSource.manager.findBy(RateLimitEntity, { bucket: `scim:${tokenId}` })).reduce((n, r) => n + r.hits, 0);

  /** Exactly LIMIT succeed with distinct RateLimit-Remaining LIMIT-1 … 0; the rest are SCIM 429s. */
  const expectExactLimit = (replies: Reply[]) => {
    const ok = replies.filter((r) => r.status === 200);
    const limited = replies.filter((r) => r.status !== 200);
    expect(ok).toHaveLength(LIMIT);
    expect(ok.map((r) => Number(r.headers.get('ratelimit-remaining'))).sort((x, y) => x - y)).toEqual(Array.from({ length: LIMIT }, (_, i) => i));
    for (const r of limited) {
      expect(r.status).toBe(429);
      expect(r.body).toMatchObject({ schemas: [SCIM_ERROR], status: '429' });
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(Number(r.headers.get('retry-after'))).toBeLessThanOrEqual(60);
      expect(r.headers.get('ratelimit-limit')).toBe(String(LIMIT));
      expect(r.headers.get('ratelimit-remaining')).toBe('0');
    }
  };

  test('the driver-level token read decides and returns exactly what the TypeORM read does', async () => {
    const viaOrm = new TokenService(ownWrites(ctx.store, (m) => new ApiTokenRepository(m)));
    const viaDriver = new TokenService(ownWrites(ctx.store, (m) => new ApiTokenRepository(m)), tokenReads(replica.store));
    const plain = await viaOrm.create({ name: 'plain', scope: 'scim' });
    const pinned = await viaOrm.create({ name: 'pinned', scope: 'backend', allowedAddresses: '192.0.2.0/24', expiresAt: new Date(Date.now() + 3600_000) });
    const expired = await viaOrm.create({ name: 'expired', scope: 'scim', expiresAt: new Date(Date.now() - 1000) });
    const outcome = (t: TokenService, auth: string | undefined, scope: 'scim' | 'backend', ip?: string) =>
      t.authenticate(auth, scope, ip).then(
        // last_used_at: the first of the two calls may have just recorded the use.
        (info) => ({ ...info, last_used_at: undefined }),
        (err: { status?: number }) => err.status,
      );
    const cases: [string | undefined, 'scim' | 'backend', string?][] = [
      [`Bearer ${plain.token}`, 'scim'],
      [`Bearer ${plain.token}`, 'backend'],
      [`Bearer ${plain.token.slice(0, -1)}${plain.token.endsWith('A') ? 'B' : 'A'}`, 'scim'],
      [`Bearer cst_${'0'.repeat(24)}.${plain.token.split('.')[1]}`, 'scim'],
      [`Bearer ${pinned.token}`, 'backend', '192.0.2.9'],
      [`Bearer ${pinned.token}`, 'backend', '198.51.100.1'],
      [`Bearer ${expired.token}`, 'scim'],
      ['Bearer nonsense', 'scim'],
      [undefined, 'scim'],
    ];
    const expected = [200, 401, 401, 401, 200, 403, 401, 401, 401];
    for (const [i, [auth, scope, ip]] of cases.entries()) {
      const [orm, driver] = [await outcome(viaOrm, auth, scope, ip), await outcome(viaDriver, auth, scope, ip)];
      expect(driver).toEqual(orm);
      expect(typeof driver === 'number' ? driver : 200).toBe(expected[i]);
    }
  });

  test('60 concurrent requests with a limit of 25: exactly 25 served, 35 refused with 429, 60 counted', async () => {
    const { token, info } = await ctx.tokens.create({ name: 'burst', scope: 'scim' });
    await awayFromMinuteEdge();
    expectExactLimit(await Promise.all(burst(a, token, 60)));
    expect(await hitsOf(info.id)).toBe(60);
  });

  test('two replicas on one database share the limit exactly', async () => {
    const { token, info } = await ctx.tokens.create({ name: 'two replicas', scope: 'scim' });
    await awayFromMinuteEdge();
    const replies = await Promise.all([...burst(a, token, 30), ...burst(b, token, 30)]);
    expectExactLimit(replies);
    expect(await hitsOf(info.id)).toBe(60);
  });

  test('a revoked token is refused by every request that starts after the revocation commits, on every replica', async () => {
    const { token, info } = await ctx.tokens.create({ name: 'revoked', scope: 'scim' });
    const path = '/Users?count=1';
    // Looked up in one batch: the right secret passes, a wrong one for the same id does not.
    const forged = `${token.slice(0, -4)}AAAA` === token ? `${token.slice(0, -4)}BBBB` : `${token.slice(0, -4)}AAAA`;
    expect((await Promise.all([get(a, token, path), get(a, forged, path), get(b, token, path)])).map((r) => r.status)).toEqual([200, 401, 200]);
    // Requests in flight while the revocation commits may go either way (or past the limit), but never fail otherwise.
    const during = Array.from({ length: 30 }, (_, i) => get(i % 2 ? a : b, token, path));
    await ctx.tokens.revoke(info.id);
    const after = await Promise.all(Array.from({ length: 30 }, (_, i) => get(i % 2 ? a : b, token, path)));
    for (const r of after) {
      expect(r.status).toBe(401);
      expect(r.body).toMatchObject({ schemas: [SCIM_ERROR], status: '401' });
    }
    for (const r of await Promise.all(during)) expect([200, 401, 429]).toContain(r.status);
    // Another live token is unaffected.
    const other = await ctx.tokens.create({ name: 'still live', scope: 'scim' });
    expect((await get(b, other.token, path)).status).toBe(200);
  });

  test("a hit counted while another request's transaction is open stands when that transaction rolls back", async () => {
    let entered!: () => void;
    let release!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const gate = new Promise<void>((r) => (release = r));
    const tx = ctx.store.transaction(async (t) => {
      await t.manager.query('SELECT 1');
      entered();
      await gate;
      throw new Error('rolled back');
    });
    await inside;
    const place = rateLimitHits(ctx.store).hit('test:rollback', 5);
    await new Promise((r) => setImmediate(r)); // the hit's statement is issued while the transaction is open
    release();
    await expect(tx).rejects.toThrow('rolled back');
    expect(await place).toBe(1);
    expect(await ctx.store.dataSource.manager.findOneBy(RateLimitEntity, { bucket: 'test:rollback', window_start: 5 })).toMatchObject({ hits: 1 });
  });

  test('the database fails during the rate-limit write: 503 in SCIM format, no 500; served again afterwards', async () => {
    const { token, info } = await ctx.tokens.create({ name: 'fault', scope: 'scim' });
    await awayFromMinuteEdge();
    expect((await get(a, token)).status).toBe(200); // the window's counter row exists
    let reply: Reply;
    if (kind === 'sqlite') {
      // Another process holds the write lock: the token read (read-only connection) goes through,
      // the counter write waits out busy_timeout.
      const intruder = new Database(ctx.db.url.slice('sqlite:'.length));
      try {
        intruder.exec('BEGIN IMMEDIATE');
        reply = await get(a, token);
        intruder.exec('ROLLBACK');
      } finally {
        intruder.close();
      }
    } else {
      // Another session locks the counter row; the server's upsert blocks on it, and then its
      // connection is killed under it.
      const bucket = `scim:${info.id}`;
      if (kind === 'postgres') {
        const locker = new Client({ connectionString: ctx.db.url });
        await locker.connect();
        try {
          await locker.query('BEGIN');
          await locker.query('SELECT hits FROM rate_limit_counters WHERE bucket = $1 FOR UPDATE', [bucket]);
          const pending = get(a, token);
          // Inside a transaction pg_stat_activity is a snapshot: clear it before each look.
          const blocked = async () => {
            await locker.query('SELECT pg_stat_clear_snapshot()');
            const sql = `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO rate_limit_counters%'`;
            return (await locker.query(sql)).rows;
          };
          let rows = await blocked();
          for (let i = 0; rows.length === 0 && i < 100; i++) rows = await new Promise((r) => setTimeout(r, 50)).then(blocked);
          expect(rows).toHaveLength(1);
          await locker.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
          reply = await pending;
          await locker.query('ROLLBACK');
        } finally {
          await locker.end();
        }
      } else {
        const locker = await createConnection(ctx.db.url);
        try {
          await locker.query('START TRANSACTION');
          await locker.query('SELECT hits FROM rate_limit_counters WHERE bucket = ? FOR UPDATE', [bucket]);
          const pending = get(a, token);
          const blocked = async () =>
            (await locker.query(`SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND INFO LIKE 'INSERT INTO rate_limit_counters%'`))[0] as { id: number }[];
          let rows = await blocked();
          for (let i = 0; rows.length === 0 && i < 100; i++) rows = await new Promise((r) => setTimeout(r, 50)).then(blocked);
          expect(rows).toHaveLength(1);
          await locker.query(`KILL ${Number(rows[0].id)}`);
          reply = await pending;
          await locker.query('ROLLBACK');
        } finally {
          await locker.end();
        }
      }
    }
    expect(reply.status).toBe(503);
    expect(reply.body).toMatchObject({ schemas: [SCIM_ERROR], status: '503' });
    expect(Number(reply.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(reply.body)).not.toMatch(/SQLITE|locked|terminat|killed|rate_limit/i);
    expect((await get(a, token)).status).toBe(200);
  });
});
