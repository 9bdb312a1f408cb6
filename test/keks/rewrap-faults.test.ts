import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { createTestContext, type TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import { spyKmsTransactions } from '../support/kms-transaction-spy';
import { VaultEmulator } from '../emulators/vault';
import { AwsKmsEmulator, REGION } from '../emulators/aws-kms';
import { listen as listenEmulator, type Running } from '../emulators/common';
import { useFakeAwsCredentials } from '../emulators/credentials';
import { TcpProxy } from '../fault/tcp-proxy';
import { rewrapEnvelopes, RewrapError } from '../../server/keks/rewrap';
import { envelopeStatus } from '../../server/keks/status';
import { binding } from '../../server/keys/binding';
import { KekEntity } from '../../entities';
import { envelopeCensus, seedPasswordKeys, startCli, whileRunning, countUnder } from './support';

/**
 * `keks rewrap` when things go wrong or take another path: the target KMS dies mid-run (clean
 * stop naming the KEK, nothing half-written, the next run finishes); Ctrl-C; a refused --to;
 * provider-native re-encryption (AWS ReEncrypt: no stored envelope is decrypted); per-user KEKs.
 */
const LOCAL = 'local://default';
const SEEDED = 600;

describe.each(testDatabaseNames())('keks rewrap faults and paths on %s', (db) => {
  let vault: VaultEmulator;
  let proxy: TcpProxy;
  let ctx: TestContext;
  let target: string;
  let master: string;
  const settings = () => ({
    CS_VAULT_TOKEN: 'root-test-token',
    CS_VAULT_SCHEME: 'http',
    // Generous for a loaded machine: the outage here is a refused connection, not a slow answer.
    CS_KMS_TIMEOUT_MS: '5000',
    CS_KMS_MAX_RETRIES: '1',
    CS_KMS_BREAKER_COOLDOWN_MS: '100',
  });

  beforeAll(async () => {
    vault = await new VaultEmulator().start();
    vault.addKey('kek-next');
    proxy = await new TcpProxy(Number(vault.hostPort.split(':')[1])).start();
    target = `vault-transit://${proxy.hostPort}/transit/keys/kek-next`;
    master = randomBytes(32).toString('base64');
    ctx = await createTestContext(db, { CS_KEK_URI: LOCAL, CS_PREVIOUS_KEK_URIS: target, CS_LOCAL_MASTER_KEY: master, ...settings() });
  });
  afterAll(async () => {
    await ctx?.cleanup();
    await proxy?.close();
    await vault?.close();
  });

  test('KMS outage mid-run: stops naming the KEK, no KMS call inside a transaction, nothing half-written; the next run finishes', async () => {
    const u = await ctx.keys.provisionUser({ userName: 'carol@example.com' }, { actor: 'test' });
    const seeded = await seedPasswordKeys(ctx.store, ctx.kms, LOCAL, SEEDED, { publicJwk: JSON.stringify(u.keys.publicJwk), privateJwe: u.keys.privateJwe });
    const before = await envelopeCensus(ctx.store);

    // --dry-run: counts, writes nothing, calls no KMS but the --to check.
    const dry = await rewrapEnvelopes(ctx.store, ctx.kms, { to: target, dryRun: true, configuredKeks: [LOCAL, target] });
    expect(dry.tables.find((t) => t.table === 'user_keys')).toMatchObject({ pending: SEEDED + 1, moved: 0 });
    expect(await envelopeCensus(ctx.store)).toEqual(before);

    const spies = [spyKmsTransactions(ctx.kms, LOCAL, ctx.store), spyKmsTransactions(ctx.kms, target, ctx.store)];
    const vaultAdapter = ctx.kms.forUri(target);
    const wrap = vaultAdapter.wrap;
    let wraps = 0;
    // The target KMS's process dies after 250 wraps (connections reset, port closed).
    vaultAdapter.wrap = async (...args) => {
      if (++wraps === 250) await proxy.kill();
      return wrap.apply(vaultAdapter, args);
    };
    try {
      const broken = await rewrapEnvelopes(ctx.store, ctx.kms, { to: target, batch: 50, configuredKeks: [LOCAL, target] });
      expect(broken.stopped).toContain(`the KMS of ${target} failed`);
      const t = broken.tables.find((x) => x.table === 'user_keys')!;
      // Batches in flight when the KMS died commit the rows they had prepared; no others.
      expect(t.moved).toBeGreaterThan(0);
      expect(t.moved).toBeLessThan(SEEDED);
      const mid = await envelopeCensus(ctx.store);
      expect(mid.mismatched).toBe(0);
      expect(mid.byKek[target]).toBe(t.moved);
      const failure = await ctx.store.repos.audit.recent(5, { action: 'kek.rewrap', outcome: 'failure' });
      expect(failure[0].detail).toContain(target);

      // The KMS is back: the same command resumes and finishes.
      await proxy.restore();
      await new Promise((r) => setTimeout(r, 150));
      const resumed = await rewrapEnvelopes(ctx.store, ctx.kms, { to: target, batch: 50, configuredKeks: [LOCAL, target] });
      expect(resumed.stopped).toBeUndefined();
      expect(resumed.tables.find((x) => x.table === 'user_keys')!.moved).toBe(SEEDED + 1 - t.moved);
      for (const s of spies) expect(s.calls.filter((c) => c.inTransaction)).toEqual([]);
    } finally {
      vaultAdapter.wrap = wrap;
      for (const s of spies) s.restore();
    }
    expect(await envelopeCensus(ctx.store)).toEqual({ byKek: { [target]: before.total }, mismatched: 0, total: before.total });
    const rows = (await ctx.store.dataSource.query('SELECT user_id AS id, wrapped_password_key AS e FROM user_keys')) as { id: string; e: string }[];
    for (const r of rows.filter((x) => seeded.has(x.id)).slice(0, 100)) {
      expect((await ctx.kms.unwrapStored(r.e, binding.passwordKey(r.id))).equals(seeded.get(r.id)!)).toBe(true);
    }
    const status = await envelopeStatus(ctx.store);
    expect(status.find((l) => l.table === 'user_keys')).toEqual({ table: 'user_keys', kek: target, keyVersion: '1', count: SEEDED + 1 });
  });

  test('a tampered envelope fails its row only; a --to no server is configured for is refused before any work', async () => {
    const u = await ctx.keys.provisionUser({ userName: 'dave@example.com' }, { actor: 'test' });
    const other = await ctx.keys.provisionUser({ userName: 'erin@example.com' }, { actor: 'test' });
    // dave's row now holds erin's envelope: it opens only with erin's binding.
    await ctx.store.transaction((t) => t.manager.query(`UPDATE user_keys SET wrapped_password_key = ${db === 'postgres' ? '$1' : '?'} WHERE user_id = ${db === 'postgres' ? '$2' : '?'}`, [other.keys.wrappedPasswordKey, u.id]));
    await expect(rewrapEnvelopes(ctx.store, ctx.kms, { to: 'local://elsewhere', configuredKeks: [LOCAL, target] })).rejects.toThrow(RewrapError);
    const underLocal = await countUnder(ctx.store, LOCAL);
    const s = await rewrapEnvelopes(ctx.store, ctx.kms, { to: target, configuredKeks: [LOCAL, target] });
    const t = s.tables.find((x) => x.table === 'user_keys')!;
    expect(t.failed).toEqual([{ key: u.id, reason: expect.stringContaining('does not open') }]);
    expect(t.moved).toBe(underLocal - 1);
    expect(await countUnder(ctx.store, LOCAL)).toBe(1);
  });

  test('KMS hung mid-run: no transaction or SQLite writer is held while it hangs (a provisioning commits meanwhile); the run stops at the KMS deadline and resumes', async () => {
    const u = await ctx.keys.provisionUser({ userName: 'hank@example.com' }, { actor: 'test' });
    await seedPasswordKeys(ctx.store, ctx.kms, LOCAL, 200, { publicJwk: JSON.stringify(u.keys.publicJwk), privateJwe: u.keys.privateJwe });
    const vaultAdapter = ctx.kms.forUri(target);
    const wrap = vaultAdapter.wrap;
    let wraps = 0;
    let hung!: () => void;
    const hangs = new Promise<void>((resolve) => (hung = resolve));
    vaultAdapter.wrap = async (...args) => {
      if (++wraps === 60) {
        proxy.hang();
        hung();
      }
      return wrap.apply(vaultAdapter, args);
    };
    try {
      let finished = false;
      const run = rewrapEnvelopes(ctx.store, ctx.kms, { to: target, batch: 20, configuredKeks: [LOCAL, target] }).finally(() => (finished = true));
      await hangs;
      await ctx.keys.provisionUser({ userName: 'ines@example.com' }, { actor: 'test' });
      expect(finished).toBe(false);
      const s = await run;
      expect(s.stopped).toContain(`the KMS of ${target} failed`);
      expect((await envelopeCensus(ctx.store)).mismatched).toBe(0);
      await proxy.restore();
      await new Promise((r) => setTimeout(r, 150));
      const resumed = await rewrapEnvelopes(ctx.store, ctx.kms, { to: target, configuredKeks: [LOCAL, target] });
      expect(resumed.stopped).toBeUndefined();
      expect(await countUnder(ctx.store, LOCAL)).toBeLessThanOrEqual(1); // dave's, when that test ran
    } finally {
      vaultAdapter.wrap = wrap;
      await proxy.restore();
    }
  }, 120_000);

  test('SIGINT finishes the batch in progress, prints a summary and exits 130; the rest moves on the next run', async () => {
    const u = await ctx.keys.provisionUser({ userName: 'frank@example.com' }, { actor: 'test' });
    await seedPasswordKeys(ctx.store, ctx.kms, LOCAL, SEEDED, { publicJwk: JSON.stringify(u.keys.publicJwk), privateJwe: u.keys.privateJwe });
    const env = { CS_DATABASE_URL: ctx.db.url, CS_LOCAL_MASTER_KEY: master, CS_KEK_URI: LOCAL, CS_PREVIOUS_KEK_URIS: target, CS_LOG_LEVEL: 'silent', ...settings() };
    const start = await countUnder(ctx.store, target);
    const run = startCli(['keks', 'rewrap', '--to', target, '--from', LOCAL, '--batch', '20'], env);
    await whileRunning(run.done, async () => (await countUnder(ctx.store, target)) > start);
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(r.stdout).toContain('interrupted: the batch in progress was finished');
    const moved = Number(/user_keys: moved (\d+)/.exec(r.stdout)?.[1]);
    expect(moved).toBe((await countUnder(ctx.store, target)) - start);
    const failed = Number(/user_keys: moved \d+, skipped \d+, failed (\d+)/.exec(r.stdout)?.[1]);
    expect((moved + failed) % 20).toBe(0); // whole batches (dave's row, if there, fails in its batch)
    expect((await envelopeCensus(ctx.store)).mismatched).toBe(0);
    const rest = await startCli(['keks', 'rewrap', '--to', target, '--from', LOCAL], env).done;
    // Only a row that cannot open (dave's, when the previous test ran) stays behind.
    const left = await countUnder(ctx.store, LOCAL);
    expect(left).toBeLessThanOrEqual(1);
    expect(rest.stdout).toContain(`failed ${left}`);
    expect(rest.code).toBe(left ? 1 : 0);
    const status = await startCli(['keks', 'status'], env).done;
    expect(status.stderr + status.stdout).toContain(`user_keys\t${target}\t1\t`);
  }, 180_000);
});

describe.each(testDatabaseNames())('keks rewrap native and per-user paths on %s', (db) => {
  test('AWS key → AWS key uses ReEncrypt: no stored envelope is decrypted, bindings hold', async () => {
    useFakeAwsCredentials(REGION);
    const emu = await new AwsKmsEmulator().start();
    // A logging front on the wire: which operations reached the KMS, on which key.
    const log: { op: string; keyId?: string }[] = [];
    const front: Running = await listenEmulator(async (req: IncomingMessage, body, res) => {
      const op = String(req.headers['x-amz-target'] ?? '').replace('TrentService.', '');
      const j = JSON.parse(body.toString('utf8') || '{}') as { KeyId?: string; SourceKeyId?: string };
      log.push({ op, keyId: j.KeyId ?? j.SourceKeyId });
      const r = await fetch(emu.endpoint, { method: 'POST', headers: Object.fromEntries(Object.entries(req.headers).filter(([k]) => !['host', 'content-length', 'connection'].includes(k)).map(([k, v]) => [k, String(v)])), body: new Uint8Array(body) });
      res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/x-amz-json-1.1' }).end(Buffer.from(await r.arrayBuffer()));
    });
    const a = emu.addKey();
    const b = emu.addKey();
    const [from, to] = [`aws-kms://${a.arn}`, `aws-kms://${b.arn}`];
    const ctx = await createTestContext(db, { CS_KEK_URI: from, CS_PREVIOUS_KEK_URIS: to, CS_AWS_KMS_ENDPOINT: front.url });
    try {
      const u = await ctx.keys.provisionUser({ userName: 'gina@example.com' }, { actor: 'test' });
      const seeded = await seedPasswordKeys(ctx.store, ctx.kms, from, 40, { publicJwk: JSON.stringify(u.keys.publicJwk), privateJwe: u.keys.privateJwe });
      log.length = 0;
      const s = await rewrapEnvelopes(ctx.store, ctx.kms, { to, configuredKeks: [from, to] });
      expect(s.tables.find((t) => t.table === 'user_keys')).toMatchObject({ moved: 41, native: 41, failed: [] });
      expect(log.filter((l) => l.op === 'ReEncrypt')).toHaveLength(41);
      expect(log.filter((l) => l.op === 'Decrypt' && l.keyId !== b.arn)).toEqual([]);
      const census = await envelopeCensus(ctx.store);
      expect(census.byKek).toEqual({ [to]: 41 });
      const [id, pk] = [...seeded.entries()][0];
      const row = await ctx.store.repos.users.findKeys(id);
      expect((await ctx.kms.unwrapStored(row!.wrappedPasswordKey, binding.passwordKey(id))).equals(pk)).toBe(true);
      await expect(ctx.kms.unwrapStored(row!.wrappedPasswordKey, binding.passwordKey(u.id))).rejects.toThrow();
    } finally {
      await ctx.cleanup();
      await front.close();
      await emu.close();
    }
  });

  test('per-user KEKs: each password key moves to a new per-user KEK on --to\'s provider (pending → active, old retired)', async () => {
    const vault = await new VaultEmulator().start();
    vault.addKey('kek-next');
    const to = `vault-transit://${vault.hostPort}/transit/keys/kek-next`;
    const ctx = await createTestContext(db, {
      CS_KEK_MODE: 'per-user',
      CS_KEK_URI: LOCAL,
      CS_PREVIOUS_KEK_URIS: to,
      CS_VAULT_TOKEN: 'root-test-token',
      CS_VAULT_SCHEME: 'http',
      CS_VAULT_CREATE_KEYS_AT: `vault-transit://${vault.hostPort}/transit`,
    });
    try {
      const users = [];
      for (const n of ['hal', 'ivy', 'jon']) users.push(await ctx.keys.provisionUser({ userName: `${n}@example.com` }, { actor: 'test' }));
      const oldKeks = users.map((u) => u.keys.kekUri);
      expect(oldKeks.every((k) => k.startsWith('local://user-'))).toBe(true);
      const s = await rewrapEnvelopes(ctx.store, ctx.kms, { to, perUser: true, configuredKeks: [LOCAL, to] });
      expect(s.tables.find((t) => t.table === 'user_keys')).toMatchObject({ moved: 3, failed: [] });
      const keks = await ctx.store.repos.manager.find(KekEntity);
      for (const [i, u] of users.entries()) {
        const row = (await ctx.store.repos.users.findKeys(u.id))!;
        expect(row.kekUri).toMatch(new RegExp(`^vault-transit://${vault.hostPort}/transit/keys/cs-user-${u.id}-r`));
        expect(keks.find((k) => k.uri === row.kekUri)).toMatchObject({ state: 'active', ownerId: u.id });
        expect(keks.find((k) => k.uri === oldKeks[i])).toMatchObject({ state: 'retired' });
        const bundle = await ctx.keys.getUserKeyBundle(u.id, { actor: 'test' });
        bundle.passwordKey.fill(0);
      }
      // Resumed or repeated: nothing left to move, no further KEK created.
      const again = await rewrapEnvelopes(ctx.store, ctx.kms, { to, perUser: true, configuredKeks: [LOCAL, to] });
      expect(again.tables.find((t) => t.table === 'user_keys')).toMatchObject({ pending: 0, moved: 0 });
      expect((await envelopeStatus(ctx.store)).find((l) => l.table === 'user_keys')).toEqual({ table: 'user_keys', kek: 'vault-transit per-user KEKs (3 keys)', keyVersion: '*', count: 3 });
    } finally {
      await ctx.cleanup();
      await vault.close();
    }
  });
});
