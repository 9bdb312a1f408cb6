import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { hostname } from 'node:os';
import pino from 'pino';
import { DATABASE_FACTORIES, testDatabaseNames, type TestDatabase } from '../support/databases';
import { startServe, type ClusterProcess } from '../cluster/support';
import { runCli } from '../fault/cli-process';
import { serve, type Running } from '../../server/cli/serve';
import { loadConfig } from '../../server/config';
import { openStore } from '../../server/boot';
import type { Store } from '../../server/repositories/store';
import { instancesSummary, RECENT_MS } from '../../server/instances/summary';
import { startHeartbeat } from '../../server/instances/heartbeat';
import { INSTANCES_TABLE } from '../../server/instances/repository';
import { packageVersion } from '../../server/instances/version';

/**
 * server_instances on each engine: two serving processes on one database both appear; one stopped
 * gracefully disappears; a crashed cluster (SIGKILL, no removal) stays listed until its seen_at
 * is older than 5 minutes, then counts as "not seen recently", and is pruned after 24 h; a failing
 * heartbeat write (table renamed) changes nothing for requests. The CLI prints the same list.
 */
jest.setTimeout(240_000);

const VERSION = packageVersion();

describe.each(testDatabaseNames())('server instances on %s', (kind) => {
  let db: TestDatabase;
  let env: Record<string, string>;
  let store: Store;
  const running: Running[] = [];
  let cluster: ClusterProcess | undefined;

  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
    env = { CS_DATABASE_URL: db.url, CS_MIGRATE_ON_START: 'true', CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64'), CS_HOST: '127.0.0.1', CS_PORT: '0', CS_LOG_LEVEL: 'silent', CS_WORKERS: '1' };
  });
  afterAll(async () => {
    for (const r of running) await r.stop();
    if (cluster) {
      try {
        process.kill(-cluster.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await cluster.close();
    }
    await store?.close();
    await db?.drop();
  });

  test('two serving processes on one database both appear; one stopped gracefully disappears', async () => {
    running.push(await serve(env, () => undefined));
    running.push(await serve(env, () => undefined));
    store = await openStore(loadConfig(env));
    // The first beat is sent right after listening, without waiting: poll briefly.
    let s = await instancesSummary(store);
    for (let i = 0; i < 50 && s.recent.length < 2; i++) s = await new Promise((r) => setTimeout(r, 100)).then(() => instancesSummary(store));
    expect(s.recent).toHaveLength(2);
    expect(new Set(s.recent.map((r) => r.id)).size).toBe(2);
    for (const r of s.recent) {
      expect(r).toMatchObject({ hostname: hostname(), pid: process.pid, worker: null, version: VERSION });
      expect(Date.parse(r.seen_at)).toBeGreaterThanOrEqual(Date.parse(r.started_at));
    }
    expect(s).toMatchObject({ notSeenRecently: 0, versions: [VERSION] });

    const stopped = running.pop()!;
    expect(await stopped.stop()).toBe(true);
    const after = await instancesSummary(store);
    expect(after.recent).toHaveLength(1);
    expect(after.notSeenRecently).toBe(0); // removed, not left to go stale
    // The one still running keeps serving and stays listed.
    expect((await fetch(`${running[0].url}/healthz`)).status).toBe(200);
    expect(s.recent.map((r) => r.id)).toContain(after.recent[0].id);
  });

  test('a cluster stopped with SIGTERM removes every worker\'s row', async () => {
    const before = new Set((await instancesSummary(store)).recent.map((r) => r.id));
    const graceful = await startServe({ workers: 2, env: { ...env, CS_PORT: '', CS_WORKERS: '2' } });
    try {
      const workerRows = async () => (await instancesSummary(store)).recent.filter((r) => !before.has(r.id));
      let rows = await workerRows();
      for (let i = 0; i < 900 && rows.length < 2; i++) rows = await new Promise((r) => setTimeout(r, 100)).then(workerRows);
      expect(rows.map((r) => r.worker).sort()).toEqual([1, 2]);
      expect(await graceful.signal('SIGTERM')).toBe(0);
      const after = await instancesSummary(store);
      expect(after.recent.map((r) => r.id)).toEqual([...before]);
      expect(after.notSeenRecently).toBe(0);
    } finally {
      await graceful.close();
    }
  });

  test('a crashed cluster (SIGKILL) keeps its worker rows until they are old: then "not seen recently", pruned after 24 h', async () => {
    const before = new Set((await instancesSummary(store)).recent.map((r) => r.id));
    cluster = await startServe({ workers: 2, env: { ...env, CS_PORT: '', CS_WORKERS: '2' } });
    const workerRows = async () => (await instancesSummary(store)).recent.filter((r) => !before.has(r.id));
    let rows = await workerRows();
    for (let i = 0; i < 900 && rows.length < 2; i++) rows = await new Promise((r) => setTimeout(r, 100)).then(workerRows);
    expect(rows.map((r) => r.worker).sort()).toEqual([1, 2]);
    expect(rows.map((r) => r.pid).sort()).toEqual(cluster.workerPids().sort());

    const exited = once(cluster.child, 'exit');
    process.kill(-cluster.pid, 'SIGKILL'); // primary and workers: nothing runs its shutdown
    await exited;
    expect((await workerRows()).map((r) => r.id).sort()).toEqual(rows.map((r) => r.id).sort()); // still there, as last seen

    // Ten minutes pass for the crashed rows (the live one keeps beating).
    const old = new Date(Date.now() - 2 * RECENT_MS).toISOString();
    await store.dataSource.createQueryBuilder().update(INSTANCES_TABLE).set({ seen_at: old }).where('id IN (:...ids)', { ids: rows.map((r) => r.id) }).execute();
    const s = await instancesSummary(store);
    expect(s.recent.map((r) => r.id)).toEqual([...before]);
    expect(s.notSeenRecently).toBe(2);

    // The CLI prints the same, as text and as JSON (a real process on the same database).
    const text = await runCli(['instances'], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`${hostname()}\tpid ${process.pid}\t${VERSION}\t`);
    expect(text.stdout).toContain('1 seen in the last 5 minutes; 2 more seen in the last 24 h but not since');
    for (const r of rows) expect(text.stdout).not.toContain(r.id);
    const json = await runCli(['instances', '--json'], env);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as Awaited<ReturnType<typeof instancesSummary>>;
    expect(parsed.recent.map((r) => r.id)).toEqual([...before]);
    expect(parsed.notSeenRecently).toBe(2);

    // Nearly a day later, any instance's next beat prunes the rows last seen over 24 h before it
    // (the crashed ones) and keeps the one seen since (the in-process server, which beat < 1 min ago).
    const later = new Date(Date.now() + 24 * 3_600_000 - 2 * 60_000);
    const hb = startHeartbeat(store, pino({ level: 'silent' }), { now: () => later, intervalMs: 3_600_000 });
    await hb.beat();
    const all = await instancesSummary(store, later);
    expect(all.recent.map((r) => r.id)).toEqual([hb.id]);
    expect(all.notSeenRecently).toBe(1); // the in-process server
    const ids = (await store.dataSource.createQueryBuilder().select('i.id', 'id').from(INSTANCES_TABLE, 'i').getRawMany<{ id: string }>()).map((r) => r.id);
    for (const r of rows) expect(ids).not.toContain(r.id);
    await hb.stop();
    expect((await instancesSummary(store, later)).recent).toEqual([]);
  });

  // Not on SQLite: an outside write lock there blocks every write, not just the heartbeat.
  if (kind !== 'sqlite') {
    test('a heartbeat stuck on a locked row is not joined by another, and serving goes on', async () => {
      const hb = startHeartbeat(store, pino({ level: 'silent' }), { intervalMs: 3_600_000 });
      await hb.beat();
      const first = (await instancesSummary(store)).recent.find((r) => r.id === hb.id)!;
      const other = await openStore(loadConfig(env));
      const qr = other.dataSource.createQueryRunner();
      try {
        await qr.connect();
        await qr.startTransaction();
        await qr.manager.createQueryBuilder().update(INSTANCES_TABLE).set({ seen_at: first.seen_at }).where('id = :id', { id: hb.id }).execute(); // holds the row lock
        const stuck = hb.beat();
        await new Promise((r) => setTimeout(r, 300));
        expect(hb.beat()).toBe(stuck); // the second tick waits on the same write
        expect((await fetch(`${running[0].url}/readyz`)).status).toBe(200);
        await qr.rollbackTransaction();
        await stuck;
        const seen = (await instancesSummary(store)).recent.find((r) => r.id === hb.id)!;
        expect(seen.seen_at > first.seen_at).toBe(true);
      } finally {
        if (qr.isTransactionActive) await qr.rollbackTransaction();
        await qr.release();
        await other.close();
        await hb.stop();
      }
    });
  }

  test('a heartbeat that cannot write (table renamed) logs at debug and changes nothing for serving', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, { write: (l: string) => lines.push(l) });
    const renamed = `${INSTANCES_TABLE}_gone`;
    await store.dataSource.query(`ALTER TABLE ${INSTANCES_TABLE} RENAME TO ${renamed}`);
    try {
      const hb = startHeartbeat(store, log, { intervalMs: 3_600_000 });
      await hb.beat();
      await expect(hb.stop()).resolves.toBeUndefined();
      expect(lines.some((l) => /instance heartbeat not recorded/.test(l))).toBe(true);
      expect(lines.every((l) => JSON.parse(l).level <= 20)).toBe(true); // debug only

      // A whole server starts, answers and stops cleanly without its heartbeat table.
      const r = await serve({ ...env, CS_MIGRATE_ON_START: 'false' }, () => undefined);
      try {
        expect((await fetch(`${r.url}/healthz`)).status).toBe(200);
        expect((await fetch(`${r.url}/readyz`)).status).toBe(200);
        expect((await fetch(`${r.url}/.well-known/jwks.json`)).status).toBeLessThan(500);
      } finally {
        expect(await r.stop()).toBe(true);
      }
      // The CLI says what failed, without a stack trace.
      const cli = await runCli(['instances'], env);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toMatch(/^crypto-server: /);
      expect(cli.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await store.dataSource.query(`ALTER TABLE ${renamed} RENAME TO ${INSTANCES_TABLE}`);
    }
    const ok: string[] = [];
    const hb = startHeartbeat(store, pino({ level: 'debug' }, { write: (l: string) => ok.push(l) }), { intervalMs: 3_600_000 });
    await hb.beat();
    expect((await instancesSummary(store)).recent.map((r) => r.id)).toContain(hb.id);
    expect(ok).toEqual([]);
    await hb.stop();
  });
});
