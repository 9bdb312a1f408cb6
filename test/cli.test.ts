import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProgram, describeFailure } from '../server/cli/main';
import { serve } from '../server/cli/serve';
import { migrate } from '../server/cli/migrate';
import { listOrphanKeks } from '../server/cli/keks';
import { doctor } from '../server/cli/doctor';
import { loadConfig } from '../server/config';
import { MIGRATIONS } from '../entities/migrations/index';

describe('crypto-server CLI', () => {
  test('--version is the package version (the one the console and the instance heartbeat report)', () => {
    const { version } = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
    expect(buildProgram().version()).toBe(version);
  });

  const dir = mkdtempSync(join(tmpdir(), 'cs-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('--help lists serve and migrate', () => {
    let out = '';
    const program = buildProgram().exitOverride().configureOutput({ writeOut: (s) => (out += s) });
    expect(() => program.parse(['node', 'crypto-server', '--help'])).toThrow();
    expect(out).toMatch(/serve\s/);
    expect(out).toMatch(/migrate/);
  });

  test('serve on embedded defaults creates the master key (0600) and database, prints them, and answers /readyz', async () => {
    const lines: string[] = [];
    const running = await serve({ CS_DATA_DIR: dir, CS_PORT: '0', CS_LOG_LEVEL: 'silent' }, (l) => lines.push(l));
    try {
      expect(statSync(join(dir, 'master.key')).mode & 0o777).toBe(0o600);
      expect(lines.join('\n')).toMatch(/created local master key .*master\.key/);
      expect(lines.join('\n')).toMatch(new RegExp(`applied ${MIGRATIONS.length} database migration`));
      expect(lines.join('\n')).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+/);
      const r = await fetch(`${running.url}/readyz`);
      expect(r.status).toBe(200);
    } finally {
      await running.stop();
    }
  });

  test('serve refuses an unmigrated external database; migrate fixes it; --check reports', async () => {
    const db = `sqlite:${join(dir, 'ext.db')}`;
    const env = { CS_DATABASE_URL: db, CS_LOCAL_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'), CS_PORT: '0', CS_LOG_LEVEL: 'silent' };
    await expect(serve(env, () => undefined)).rejects.toThrow(/run `crypto-server migrate` first/);
    const out: string[] = [];
    expect(await migrate(env, (l) => out.push(l), { check: true })).toBe(1);
    expect(await migrate(env, (l) => out.push(l), {})).toBe(0);
    expect(await migrate(env, (l) => out.push(l), { check: true })).toBe(0);
    expect(out).toEqual(['the database has pending migrations', `applied: ${MIGRATIONS.map((M) => new M().name).join(', ')}`, 'the database schema is up to date']);
    const running = await serve(env, () => undefined);
    await running.stop();
    expect(await listOrphanKeks(env, () => undefined)).toBe(0);
  });

  test('a port already in use stops serve with a clear error instead of a silent exit', async () => {
    const first = await serve({ CS_DATA_DIR: join(dir, 'p1'), CS_PORT: '0', CS_LOG_LEVEL: 'silent' }, () => undefined);
    try {
      const port = new URL(first.url).port;
      await expect(serve({ CS_DATA_DIR: join(dir, 'p2'), CS_PORT: port, CS_LOG_LEVEL: 'silent' }, () => undefined)).rejects.toThrow(
        new RegExp(`CS_PORT: port ${port} on CS_HOST 127.0.0.1 is already in use`),
      );
    } finally {
      await first.stop();
    }
  });

  test('an external database never gets a master key created behind the operator’s back', async () => {
    const env = { CS_DATABASE_URL: `sqlite:${join(dir, 'ext2.db')}`, CS_MIGRATE_ON_START: 'true', CS_LOCAL_MASTER_KEY_FILE: join(dir, 'none.key'), CS_PORT: '0', CS_LOG_LEVEL: 'silent' };
    await expect(serve(env, () => undefined)).rejects.toThrow(/CS_LOCAL_MASTER_KEY_FILE: .* does not exist\. If this database already holds keys/);
  });

  test('start-up failures are one clear line', () => {
    let err: unknown;
    try {
      loadConfig({ CS_PORT: 'x' });
    } catch (e) {
      err = e;
    }
    expect(describeFailure(err)).toMatch(/^invalid configuration:\n {2}CS_PORT: /);
  });
});

describe('crypto-server doctor', () => {
  test('passes on a working KEK and reports each check', async () => {
    const out: string[] = [];
    const code = await doctor({ CS_LOCAL_MASTER_KEY: Buffer.alloc(32, 3).toString('base64'), CS_KEK_URI: 'local://doc' }, (l) => out.push(l));
    expect(code).toBe(0);
    expect(out).toEqual(['KEK local://doc', '  ok    wrap', '  ok    unwrap returns the same key', '  ok    binding: a different owner is refused', 'all checks passed']);
  });

  test('fails clearly on a KEK whose adapter is misconfigured', async () => {
    await expect(doctor({ CS_KEK_URI: 'local://x', CS_DATABASE_URL: 'sqlite:/tmp/none.db', CS_LOCAL_MASTER_KEY_FILE: '/nonexistent/master.key' }, () => undefined)).rejects.toThrow(
      /CS_LOCAL_CREATE_MASTER_KEY=true/,
    );
  });
});

describe('CLI option parsing', () => {
  test.each([
    [['outbox', 'list', '--limit', 'x']],
    [['outbox', 'list', '--limit', '0']],
    [['outbox', 'list', '--limit', '-3']],
    [['token', 'create', '--scope', 'scim', '--expires-days', '1.5']],
  ])('%j is refused by the parser with a clear message, before any database is opened', (args) => {
    let err = '';
    const program = buildProgram().exitOverride();
    program.commands.forEach((c) => c.exitOverride().configureOutput({ writeErr: (s) => (err += s) }));
    for (const c of program.commands) c.commands.forEach((sub) => sub.exitOverride().configureOutput({ writeErr: (s) => (err += s) }));
    expect(() => program.parse(['node', 'crypto-server', ...args])).toThrow();
    expect(err).toMatch(/must be a whole number from \d+ to \d+/);
  });
});
