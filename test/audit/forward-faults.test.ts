/**
 * Faults on the audit reading and forwarding paths: the database connection dropped under a
 * forwarder (it warns, waits, resumes; no event lost) and under an export (exit 1, no file left
 * that looks whole); a syslog server that accepts and never answers (the forwarder gives up the
 * attempt, audited writes go on, shutdown is not held up).
 */
import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../server/config';
import { openStore } from '../../server/boot';
import type { Store } from '../../server/repositories/store';
import { AuditForwarder } from '../../server/audit/forward';
import { FileSink } from '../../server/audit/forward-sinks';
import { SyslogTlsSink } from '../../server/audit/forward-syslog';
import { ForwardCursorRepository } from '../../server/audit/forward-cursors';
import { lastAuditSeq } from '../../server/audit/search';
import { TcpProxy } from '../fault/tcp-proxy';
import { DATABASE_FACTORIES, testDatabaseNames, type TestDatabase } from '../support/databases';
import { completeLines, recordingLog, sleep, until } from './forward-support';

const ROOT = join(__dirname, '..', '..');
const viaProxy = (url: string, port: number) => url.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${port}`);
const portOf = (url: string) => Number(/127\.0\.0\.1:(\d+)/.exec(url)![1]);

async function audit(store: Store, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i += 250) {
    await Promise.all(Array.from({ length: Math.min(250, n - i) }, (_, j) => store.auditCommitted({ actor: `${tag}-${i + j}`, action: 'password-key.unwrap', outcome: 'success', targetType: 'user', targetId: `u-${i + j}` })));
  }
}

describe.each(testDatabaseNames(['postgres', 'mariadb']))('database dropped under audit reading on %s', (kind) => {
  let db: TestDatabase;
  let store: Store;
  let proxy: TcpProxy;
  let dir: string;

  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
    dir = mkdtempSync(join(tmpdir(), 'cs-forward-faults-'));
    store = await openStore(loadConfig({ CS_DATABASE_URL: db.url, CS_LOG_LEVEL: 'silent' }));
    await store.migrate();
    proxy = await new TcpProxy(portOf(db.url)).start();
  });
  afterAll(async () => {
    await proxy?.close();
    await store?.close();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a forwarder whose database connection is cut warns, waits and resumes; every event reaches the file', async () => {
    // The forwarder's own process-wide store reaches the database through the proxy; the writers do not.
    const fwdStore = await openStore(loadConfig({ CS_DATABASE_URL: viaProxy(db.url, proxy.port), CS_LOG_LEVEL: 'silent', CS_DB_ACQUIRE_TIMEOUT_MS: '1000' }));
    const path = join(dir, 'dropped.jsonl');
    const log = recordingLog();
    const f = new AuditForwarder(fwdStore, [new FileSink(`file:${path}`, path)], log, { pollMs: 50, batch: 100, from: 'start', maxBackoffMs: 300 }).start();
    try {
      await audit(store, 1000, 'before');
      await until('the first events in the file', () => completeLines(path).length > 200);
      await proxy.kill();
      await audit(store, 1000, 'during');
      await until('the outage to show', () => log.lines.some((l) => l.level === 'warn'));
      await proxy.restore();
      await audit(store, 500, 'after');
      // Complete lines only: a resend (at-least-once) may be mid-write when the file is read.
      const seqs = () => new Set(completeLines(path).map((l) => (JSON.parse(l) as { seq: number }).seq));
      await until('every event in the file', () => seqs().size >= 2500, 120_000);
      expect([...seqs()].sort((a, b) => a - b)).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
      expect(log.lines.some((l) => l.msg === 'audit forwarding resumed')).toBe(true);
    } finally {
      await f.stop();
      await fwdStore.close();
    }
  }, 180_000);

  it('an export whose database connection is cut exits 1 with a one-line message and leaves no file', async () => {
    await audit(store, 30_000, 'export');
    const out = join(dir, 'cut.jsonl');
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '-r', join(ROOT, 'test/fault/ts-register.js'), join(ROOT, 'server/cli/main.ts'), 'audit', 'export', '--since', '2000-01-01', '--output', out], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', CS_DATABASE_URL: viaProxy(db.url, proxy.port), CS_LOG_LEVEL: 'silent', CS_DB_ACQUIRE_TIMEOUT_MS: '1000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = new Promise<number | null>((resolve) => child.on('close', resolve));
    // Freeze the wire as soon as the export has written something, then cut it.
    await until('the export to start writing', () => existsSync(`${out}.partial`) && readFileSync(`${out}.partial`).length > 0, 120_000);
    proxy.hang();
    await sleep(200);
    await proxy.kill();
    expect(await code).toBe(1);
    expect(stderr).toMatch(/^crypto-server: /);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(dir).filter((n) => n.startsWith('cut.jsonl'))).toEqual([]);
    await proxy.restore();
  }, 300_000);
});

describe.each(testDatabaseNames())('a syslog server that never answers, on %s', (kind) => {
  let db: TestDatabase;
  let store: Store;
  let silent: Server;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
    store = await openStore(loadConfig({ CS_DATABASE_URL: db.url, CS_LOG_LEVEL: 'silent' }));
    await store.migrate();
    // Accepts TCP connections and never says a word: the TLS handshake hangs.
    silent = createServer((s) => void sockets.add(s.on('error', () => undefined)));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent?.close(r));
    await store?.close();
    await db?.drop();
  });

  it('each attempt times out and is retried, audited writes go on, and stopping is not held up', async () => {
    const port = (silent.address() as { port: number }).port;
    const name = `syslog+tls://127.0.0.1:${port}`;
    const settings = { facility: 13, appName: 'crypto-server', hostname: 'cs-test' };
    const log = recordingLog();
    const f = new AuditForwarder(store, [new SyslogTlsSink(name, '127.0.0.1', port, settings, { connectTimeoutMs: 300 })], log, { pollMs: 50, batch: 100, from: 'start', maxBackoffMs: 200 }).start();
    await audit(store, 300, 'hung');
    await until('two timed-out attempts', () => log.lines.filter((l) => l.level === 'warn').length >= 1 && sockets.size >= 2);
    expect(log.lines[0].obj.error).toMatch(/ETIMEDOUT: TLS connection to 127\.0\.0\.1:\d+ timed out/);
    expect(await lastAuditSeq(store)).toBe(300);
    const row = (await new ForwardCursorRepository(store.dataSource.manager).list()).find((r) => r.sink === name)!;
    expect(Number(row.lastSeq)).toBe(0);
    expect(row.lastError).toMatch(/timed out/);
    await f.stop();

    // A handshake that would hang for a minute: stop() cuts it instead of waiting.
    const slow = new AuditForwarder(store, [new SyslogTlsSink(name, '127.0.0.1', port, settings, { connectTimeoutMs: 60_000 })], recordingLog(), { pollMs: 50, batch: 100, from: 'start' }).start();
    const before = sockets.size;
    await until('the hanging handshake', () => sockets.size > before);
    await slow.stop(500);
    expect(Number((await new ForwardCursorRepository(store.dataSource.manager).list()).find((r) => r.sink === name)!.lastSeq)).toBe(0);
  }, 120_000);
});
