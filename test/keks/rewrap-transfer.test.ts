import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import request from 'supertest';
import { createAuthFixture, signInForToken, type AuthFixture } from '../support/auth-fixture';
import { testDatabaseNames, type DatabaseName } from '../support/databases';
import { createSoftHsm, type SoftHsm } from '../support/softhsm';
import { listen, type Listening } from '../support/http-server';
import { createApp } from '../../server/http/app';
import { binding } from '../../server/keys/binding';
import { UnwrapRefusedError } from '../../server/errors';
import { countUnder, envelopeCensus, seedPasswordKeys, startCli, whileRunning } from './support';

/**
 * `keks rewrap` moving every stored envelope from the local KEK to a KEK in a real PKCS#11 token
 * (SoftHSM2), run as its own process while the server keeps serving and clients keep unwrapping:
 * SIGKILLed halfway, then resumed. 10,000 envelopes on SQLite; 2,500 on PostgreSQL and MariaDB
 * to keep the file within its time budget on a shared machine (the code path is the same).
 */
const COUNT: Record<DatabaseName, number> = { sqlite: 10_000, postgres: 2_500, mariadb: 2_500 };
const LOCAL = 'local://default';

describe.each(testDatabaseNames())('keks rewrap local → pkcs11 on %s', (db) => {
  let hsm: SoftHsm;
  let f: AuthFixture;
  let api: Listening;
  let env: Record<string, string>;
  let target: string;

  beforeAll(async () => {
    hsm = createSoftHsm(['cs-rewrap']);
    target = 'pkcs11:token=cs-rewrap;object=kek-next;type=secret-key';
    const settings = { CS_PKCS11_MODULE: hsm.module, CS_PKCS11_PIN: hsm.pin, CS_PKCS11_TOKEN: 'cs-rewrap' };
    // Step 1 of docs/operations.md: both KEKs configured on the servers before the move.
    const master = randomBytes(32).toString('base64');
    f = await createAuthFixture(db, { CS_KEK_URI: LOCAL, CS_PREVIOUS_KEK_URIS: target, CS_LOCAL_MASTER_KEY: master, ...settings });
    expect(await f.kms.forUri(target).createKey!('kek-next')).toBe(target);
    env = {
      CS_DATABASE_URL: f.db.url,
      CS_LOCAL_MASTER_KEY: master,
      CS_KEK_URI: LOCAL,
      CS_PREVIOUS_KEK_URIS: target,
      CS_LOG_LEVEL: 'silent',
      SOFTHSM2_CONF: join(hsm.dir, 'softhsm2.conf'),
      ...settings,
    };
    api = await listen(createApp(f));
  });
  afterAll(async () => {
    await api?.close();
    await f?.cleanupAll();
    hsm?.cleanup();
  });

  test('moves every envelope with the server serving throughout, survives SIGKILL, keeps every binding', async () => {
    // Real users (signed in, in a group, a token-signing key) and thousands of seeded password keys.
    const op = { actor: 'test' };
    const alice = await f.keys.provisionUser({ userName: 'alice@example.com' }, op);
    const bob = await f.keys.provisionUser({ userName: 'bob@example.com' }, op);
    await f.keys.provisionGroup({ displayName: 'Engineering', memberIds: [alice.id, bob.id] }, op);
    const tokens = { alice: await signInForToken(f, { nameId: 'alice@example.com' }), bob: await signInForToken(f, { nameId: 'bob@example.com' }) };
    const seeded = await seedPasswordKeys(f.store, f.kms, LOCAL, COUNT[db], { publicJwk: JSON.stringify(alice.keys.publicJwk), privateJwe: alice.keys.privateJwe });
    const before = await envelopeCensus(f.store);
    expect(before.byKek[LOCAL]).toBe(before.total);
    expect(before.total).toBeGreaterThanOrEqual(COUNT[db] + 5);

    // Clients unwrap throughout: their stored key (which moves under them) and a copy they hold.
    const who = [
      { id: alice.id, token: tokens.alice, held: alice.keys.wrappedPasswordKey },
      { id: bob.id, token: tokens.bob, held: bob.keys.wrappedPasswordKey },
    ];
    const expected = new Map<string, string>();
    for (const u of who) {
      const r = await request(api.url).get('/api/keys/me').set('Authorization', `Bearer ${u.token}`);
      expect(r.status).toBe(200);
      expected.set(u.id, r.body.passwordKey);
    }
    let running = true;
    const failures: string[] = [];
    let unwraps = 0;
    const client = (async () => {
      for (let i = 0; running; i++) {
        const u = who[i % 2];
        const r =
          i % 4 < 2
            ? await request(api.url).get('/api/keys/me').set('Authorization', `Bearer ${u.token}`)
            : await request(api.url).post('/api/keys/password-key/unwrap').set('Authorization', `Bearer ${u.token}`).send({ wrappedPasswordKey: u.held });
        if (r.status !== 200 || r.body.passwordKey !== expected.get(u.id)) failures.push(`${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
        else unwraps++;
      }
    })();

    try {
      // --dry-run counts and writes nothing.
      const dry = await startCli(['keks', 'rewrap', '--to', target, '--dry-run'], env).done;
      expect(dry.stderr + dry.stdout).not.toMatch(/error|failed|Error/);
      expect(dry.code).toBe(0);
      expect(dry.stdout).toContain(`user_keys: ${COUNT[db] + 2} envelope(s) would move to ${target}`);
      expect(await envelopeCensus(f.store)).toEqual(before);

      // Killed halfway: a batch is one transaction, so each row is either moved or untouched.
      const first = startCli(['keks', 'rewrap', '--to', target, '--batch', '100'], env);
      await whileRunning(first.done, async () => (await countUnder(f.store, target)) >= COUNT[db] / 2, 180_000);
      first.child.kill('SIGKILL');
      const killed = await first.done;
      expect(killed.code).toBe(-1);
      const half = await envelopeCensus(f.store);
      expect(half.mismatched).toBe(0);
      expect(half.total).toBe(before.total);
      expect(half.byKek[target]).toBeGreaterThan(0);
      expect(half.byKek[LOCAL]).toBeGreaterThan(0);

      // Resumed: only what is left moves.
      const second = await startCli(['keks', 'rewrap', '--to', target, '--batch', '250'], env).done;
      expect(second.stderr).toBe('');
      expect(second.code).toBe(0);
      const moved = Number(/user_keys: moved (\d+)/.exec(second.stdout)?.[1]);
      expect(moved).toBe(half.byKek[LOCAL] - (before.total - COUNT[db] - 2));
      expect(second.stdout).toMatch(/group_key_versions: moved 1, skipped 0, failed 0/);
      expect(second.stdout).toMatch(/signing_keys: moved 1, skipped 0, failed 0/);
    } finally {
      running = false;
      await client;
    }
    expect(failures).toEqual([]);
    expect(unwraps).toBeGreaterThan(10);

    const after = await envelopeCensus(f.store);
    expect(after).toEqual({ byKek: { [target]: before.total }, mismatched: 0, total: before.total });
    // A third run finds nothing to do.
    const third = await startCli(['keks', 'rewrap', '--to', target], env).done;
    expect(third.code).toBe(0);
    expect(third.stdout).toContain('user_keys: moved 0, skipped 0, failed 0');

    // Every seeded key opens under pkcs11 with its own binding to the same plaintext, and not as another user's.
    const rows = (await f.store.dataSource.query('SELECT user_id AS id, wrapped_password_key AS e FROM user_keys')) as { id: string; e: string }[];
    const ids = [...seeded.keys()];
    for (const [i, r] of rows.entries()) {
      if (!seeded.has(r.id)) continue;
      const pk = await f.kms.unwrapStored(r.e, binding.passwordKey(r.id));
      expect(pk.equals(seeded.get(r.id)!)).toBe(true);
      if (i % 97 === 0) await expect(f.kms.unwrapStored(r.e, binding.passwordKey(ids[(ids.indexOf(r.id) + 1) % ids.length]))).rejects.toBeInstanceOf(UnwrapRefusedError);
    }

    // The moves are audited per batch and add up.
    const audit = await f.store.repos.audit.recent(1000, { action: 'kek.rewrap' });
    const movedAudited = audit.map((a) => JSON.parse(a.detail ?? '{}') as { count: number; to: string; table: string });
    expect(movedAudited.every((d) => d.to === target)).toBe(true);
    expect(movedAudited.reduce((n, d) => n + d.count, 0)).toBe(before.total);

    // And the server still serves, the clients' old copies included.
    for (const u of who) {
      const r = await request(api.url).post('/api/keys/password-key/unwrap').set('Authorization', `Bearer ${u.token}`).send({ wrappedPasswordKey: u.held });
      expect(r.body.passwordKey).toBe(expected.get(u.id));
    }
  }, 240_000);
});
