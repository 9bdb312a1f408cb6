import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { boot, openStore } from '../../server/boot';
import { loadConfig } from '../../server/config';
import { MIGRATIONS } from '../../entities/migrations/index';
import { DATABASE_FACTORIES, type TestDatabase } from '../support/databases';
import { runCli } from './cli-process';
import { MigrationLockTimeoutError, withMigrationLock } from '../../server/repositories/migration-lock';

/**
 * Replicas starting together: five `crypto-server migrate` processes at once on one database all
 * succeed (a database lock serialises them; the later ones find nothing to do) and every
 * migration is applied exactly once.
 */
describe.each(['postgres', 'mariadb'] as const)('concurrent migrate processes (%s)', (kind) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
  });
  afterAll(async () => db?.drop());

  test('5 concurrent runs all exit 0; the schema is complete once', async () => {
    const env = { CS_DATABASE_URL: db.url, CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64') };
    const runs = await Promise.all([1, 2, 3, 4, 5].map(() => runCli(['migrate'], env)));
    for (const r of runs) expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    // Exactly one run applied the migrations; the others waited and found nothing to do.
    expect(runs.filter((r) => r.stdout.startsWith('applied:'))).toHaveLength(1);
    expect(runs.filter((r) => r.stdout.includes('already up to date'))).toHaveLength(4);

    const store = await openStore(loadConfig(env));
    try {
      const rows: { name: string }[] = await store.dataSource.query('SELECT name FROM migrations');
      expect(rows.map((r) => r.name).sort()).toEqual(MIGRATIONS.map((m) => m.name).sort());
      expect(await store.hasPendingMigrations()).toBe(false);
    } finally {
      await store.close();
    }
    const check = await runCli(['migrate', '--check'], env);
    expect(check.code).toBe(0);
  });
});

describe.each(['postgres', 'mariadb'] as const)('replicas booting together with migrate-on-start (%s)', (kind) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
  });
  afterAll(async () => db?.drop());

  test('three boots at once on an empty database all start', async () => {
    const config = loadConfig({ CS_DATABASE_URL: db.url, CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64'), CS_MIGRATE_ON_START: 'true' });
    const booted = await Promise.allSettled([1, 2, 3].map(() => boot(config, pino({ level: 'silent' }), { migrate: true })));
    await Promise.all(booted.map((b) => (b.status === 'fulfilled' ? b.value.close() : undefined)));
    expect(booted.map((b) => (b.status === 'rejected' ? String(b.reason) : 'started'))).toEqual(['started', 'started', 'started']);
  });
});

describe.each(['postgres', 'mariadb'] as const)('migration lock wait is bounded (%s)', (kind) => {
  test('a run that cannot get the lock in time fails with a clear message and changes nothing', async () => {
    const db = await DATABASE_FACTORIES[kind]();
    const config = loadConfig({ CS_DATABASE_URL: db.url, CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64') });
    const holder = await openStore(config);
    const waiter = await openStore(config);
    try {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let acquired!: () => void;
      const isHeld = new Promise<void>((r) => (acquired = r));
      const holding = withMigrationLock(holder.dataSource, 5, async () => {
        acquired();
        await held;
      });
      await isHeld;
      let ran = false;
      await expect(withMigrationLock(waiter.dataSource, 1, async () => { ran = true; })).rejects.toBeInstanceOf(MigrationLockTimeoutError);
      expect(ran).toBe(false);
      release();
      await holding;
      // Released: the next run gets it at once.
      await expect(withMigrationLock(waiter.dataSource, 1, async () => 'ok')).resolves.toBe('ok');
    } finally {
      await holder.close();
      await waiter.close();
      await db.drop();
    }
  });
});
