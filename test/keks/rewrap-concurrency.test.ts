import { randomBytes } from 'node:crypto';
import { createTestContext, type TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import { rewrapEnvelopes } from '../../server/keks/rewrap';
import { ENVELOPE_SOURCES, type EnvelopeSource } from '../../server/keks/sources';
import { binding } from '../../server/keys/binding';
import { envelopeCensus, seedPasswordKeys, countUnder } from './support';

/**
 * `keks rewrap` against the servers' own writes and a database that fails under it: a row a
 * server rewrote between the KMS step and the update keeps the server's value (compare-and-set),
 * and is then moved from that value; a connection lost inside a batch's transaction leaves the
 * whole batch untouched, and a re-run finishes.
 */
const FROM = 'local://default';
const TO = 'local://next';

describe.each(testDatabaseNames())('keks rewrap under concurrent writes and database faults on %s', (db) => {
  let ctx: TestContext;
  const sql = (n: number) => (db === 'postgres' ? `$${n}` : '?');

  beforeEach(async () => {
    ctx = await createTestContext(db, { CS_KEK_URI: FROM, CS_PREVIOUS_KEK_URIS: TO, CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64') });
  });
  afterEach(async () => {
    await ctx?.cleanup();
  });

  async function seed(n: number) {
    const u = await ctx.keys.provisionUser({ userName: 'kim@example.com' }, { actor: 'test' });
    return seedPasswordKeys(ctx.store, ctx.kms, FROM, n, { publicJwk: JSON.stringify(u.keys.publicJwk), privateJwe: u.keys.privateJwe });
  }

  test('a concurrent writer wins: its value is kept and moved (never the stale one), or skipped when already under --to', async () => {
    const seeded = await seed(60);
    const [a, b] = [...seeded.keys()].slice(10, 12);
    const fresh = randomBytes(32);
    const adapter = ctx.kms.forUri(TO);
    const wrap = adapter.wrap;
    let calls = 0;
    // While the first batch is in its KMS step, a "server" rewrites two of its rows.
    adapter.wrap = async (...args) => {
      if (++calls === 30) {
        const underFrom = await ctx.kms.wrap(FROM, fresh, binding.passwordKey(a));
        const underTo = await ctx.kms.wrap(TO, fresh, binding.passwordKey(b));
        await ctx.store.transaction(async (t) => {
          await t.manager.query(`UPDATE user_keys SET wrapped_password_key = ${sql(1)} WHERE user_id = ${sql(2)}`, [underFrom, a]);
          await t.manager.query(`UPDATE user_keys SET wrapped_password_key = ${sql(1)}, kek_uri = ${sql(2)} WHERE user_id = ${sql(3)}`, [underTo, TO, b]);
        });
      }
      return wrap.apply(adapter, args);
    };
    try {
      const s = await rewrapEnvelopes(ctx.store, ctx.kms, { to: TO, batch: 100, configuredKeks: [FROM, TO] });
      expect(s.tables.find((t) => t.table === 'user_keys')).toMatchObject({ moved: 60, skipped: 1, failed: [] });
    } finally {
      adapter.wrap = wrap;
    }
    expect(await envelopeCensus(ctx.store)).toMatchObject({ byKek: { [TO]: 61 }, mismatched: 0 });
    for (const id of [a, b]) {
      const row = (await ctx.store.repos.users.findKeys(id))!;
      expect((await ctx.kms.unwrapStored(row.wrappedPasswordKey, binding.passwordKey(id))).equals(fresh)).toBe(true);
    }
    const other = [...seeded.keys()][0];
    const row = (await ctx.store.repos.users.findKeys(other))!;
    expect((await ctx.kms.unwrapStored(row.wrappedPasswordKey, binding.passwordKey(other))).equals(seeded.get(other)!)).toBe(true);
  });

  test('the database connection lost inside a batch: that batch is untouched, the run fails, a re-run finishes', async () => {
    await seed(90);
    let swaps = 0;
    // The user_keys source, with the connection of the batch's transaction killed at its 2nd batch's 10th update.
    const base = ENVELOPE_SOURCES[0];
    const faulty: EnvelopeSource = {
      ...base,
      async swap(m, row, envelope, kekUri) {
        if (++swaps === 40) {
          if (db === 'postgres') await m.query('SELECT pg_terminate_backend(pg_backend_pid())').catch(() => undefined);
          else if (db === 'mariadb') {
            const [{ id }] = (await m.query('SELECT CONNECTION_ID() AS id')) as { id: number }[];
            await m.query(`KILL ${Number(id)}`).catch(() => undefined);
          }
          else throw new Error('SQLITE_IOERR: disk I/O error (injected)');
        }
        return base.swap(m, row, envelope, kekUri);
      },
    };
    await expect(rewrapEnvelopes(ctx.store, ctx.kms, { to: TO, batch: 30, lanes: 1, configuredKeks: [FROM, TO], sources: [faulty] })).rejects.toThrow();
    const mid = await envelopeCensus(ctx.store);
    expect(mid.mismatched).toBe(0);
    expect(mid.byKek[TO]).toBe(30); // the first batch only; the second rolled back as a whole
    const s = await rewrapEnvelopes(ctx.store, ctx.kms, { to: TO, configuredKeks: [FROM, TO] });
    expect(s.tables.find((t) => t.table === 'user_keys')).toMatchObject({ moved: 61, failed: [] });
    expect(await countUnder(ctx.store, FROM)).toBe(0);
  });

  test('two runs at once (two operators, or a Job started twice): every envelope moves once, neither run fails, every key opens to its bytes', async () => {
    const seeded = await seed(80);
    const runs = await Promise.all([1, 2].map(() => rewrapEnvelopes(ctx.store, ctx.kms, { to: TO, batch: 20, configuredKeks: [FROM, TO] })));
    const userKeys = runs.map((r) => r.tables.find((t) => t.table === 'user_keys')!);
    for (const t of userKeys) expect(t.failed).toEqual([]);
    // Each envelope was moved by one run; the other found it under --to already (or never saw it pending).
    expect(userKeys[0]!.moved + userKeys[1]!.moved).toBe(81);
    expect(await countUnder(ctx.store, FROM)).toBe(0);
    expect(await envelopeCensus(ctx.store)).toMatchObject({ byKek: { [TO]: 81 }, mismatched: 0 });
    for (const [id, bytes] of seeded) {
      const row = (await ctx.store.repos.users.findKeys(id))!;
      expect((await ctx.kms.unwrapStored(row.wrappedPasswordKey, binding.passwordKey(id))).equals(bytes)).toBe(true);
    }
  });
});
