/**
 * `crypto-server audit tail|search|export` as real processes against the three databases: filters,
 * paging, follow, bad input (exit 2, the flag named), terminal-safe output, and an export of
 * 100,000 events in bounded memory with CSV escaping that a CSV reader gets back exactly.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../server/config';
import { openStore } from '../../server/boot';
import type { Store } from '../../server/repositories/store';
import type { AuditInput } from '../../server/repositories/audit';
import { countAudit } from '../../server/audit/search';
import { runCli } from '../fault/cli-process';
import { DATABASE_FACTORIES, testDatabaseNames, type TestDatabase } from '../support/databases';

const ROOT = join(__dirname, '..', '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** RFC 4180 reader (quoted fields may hold commas, quotes and line breaks). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(field), (field = '');
    else if (c === '\n') row.push(field), rows.push(row), (row = []), (field = '');
    else field += c;
  }
  if (field !== '' || row.length) row.push(field), rows.push(row);
  return rows;
}

/** Peak resident memory of a child process in kB (VmHWM, polled from /proc while it runs). */
function runWithPeakRss(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string; peakKb: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '-r', join(ROOT, 'test/fault/ts-register.js'), join(ROOT, 'server/cli/main.ts'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let peakKb = 0;
    child.stderr.on('data', (d) => (stderr += d));
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peakKb = Math.max(peakKb, Number(m[1]));
      } catch {
        // exited between polls
      }
    }, 20);
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ code, stderr, peakKb });
    });
  });
}

describe.each(testDatabaseNames())('audit CLI on %s', (kind) => {
  let db: TestDatabase;
  let store: Store;
  let env: Record<string, string>;
  let dir: string;

  const events: AuditInput[] = [
    { actor: 'alice', action: 'password-key.unwrap', outcome: 'success', targetType: 'user', targetId: 'u-alice', requestId: 'r-1' },
    { actor: 'bob', action: 'password-key.unwrap', outcome: 'refused', targetType: 'user', targetId: 'u-alice', requestId: 'r-2', detail: { code: 'unwrap_refused' } },
    { actor: 'scim', action: 'group.create', outcome: 'success', targetType: 'group', targetId: 'g-1' },
    { actor: 'alice', action: 'group.rotate', outcome: 'failure', targetType: 'group', targetId: 'g-1', detail: { code: 'kms_unavailable' } },
    // An IdP-supplied value with terminal escape sequences and a line break.
    { actor: 'mallory\x1b[2J\x1b]0;owned\x07', action: 'sign-in', outcome: 'refused', targetType: 'user', targetId: 'line\nbreak' },
  ];

  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
    dir = mkdtempSync(join(tmpdir(), 'cs-audit-cli-'));
    env = { CS_DATABASE_URL: db.url, CS_LOG_LEVEL: 'silent' };
    store = await openStore(loadConfig(env));
    await store.migrate();
    await store.transaction(async (t) => {
      for (const e of events) await t.audit.append(e);
    });
  });
  afterAll(async () => {
    await store?.close();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const json = (stdout: string) => stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

  it('search filters by actor, outcome, target and request id; JSON lines carry the chain fields', async () => {
    const alice = await runCli(['audit', 'search', '--actor', 'alice', '--json'], env);
    expect(alice.code).toBe(0);
    expect(json(alice.stdout).map((e) => e.action)).toEqual(['group.rotate', 'password-key.unwrap']);
    const first = json(alice.stdout)[1];
    expect(first).toMatchObject({ actor: 'alice', outcome: 'success', targetType: 'user', targetId: 'u-alice', requestId: 'r-1', detail: null });
    expect(typeof first.seq).toBe('number');
    expect(first.hash === null || /^[0-9a-f]{64}$/.test(String(first.hash))).toBe(true);
    const refused = await runCli(['audit', 'search', '--outcome', 'refused', '--target', 'user:u-alice', '--json'], env);
    expect(json(refused.stdout)).toEqual([expect.objectContaining({ actor: 'bob', detail: { code: 'unwrap_refused' } })]);
    const groups = await runCli(['audit', 'search', '--target', 'group:', '--json'], env);
    expect(json(groups.stdout).map((e) => e.action)).toEqual(['group.rotate', 'group.create']);
    const byRequest = await runCli(['audit', 'search', '--request-id', 'r-2', '--since', '-1h', '--until', '1970-01-01T00:00:00Z'], env);
    expect(byRequest.code).toBe(2);
    expect(byRequest.stderr).toMatch(/--since must be before --until/);
    const none = await runCli(['audit', 'search', '--since', '-1h', '--actor', 'nobody'], env);
    expect(none.code).toBe(0);
    expect(none.stdout).toBe('');
    expect(none.stderr).toMatch(/no matching events/);
  });

  it('search pages with the cursor it prints', async () => {
    const p1 = await runCli(['audit', 'search', '--limit', '2', '--json'], env);
    const cursor = /--before (\d+)/.exec(p1.stderr)?.[1];
    expect(cursor).toBeDefined();
    const p2 = await runCli(['audit', 'search', '--limit', '2', '--json', '--before', cursor!], env);
    const p3 = await runCli(['audit', 'search', '--limit', '2', '--json', '--before', /--before (\d+)/.exec(p2.stderr)![1]], env);
    expect(p3.stderr).not.toMatch(/--before/);
    const ids = [...json(p1.stdout), ...json(p2.stdout), ...json(p3.stdout)].map((e) => e.id as number);
    expect(ids).toHaveLength(5);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
  });

  it('human lines escape control characters, so a stored value cannot drive the terminal', async () => {
    const r = await runCli(['audit', 'search', '--outcome', 'refused', '--action', 'sign-in'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/\x1b|\x07/);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.stdout).toContain('mallory\\x1b[2J\\x1b]0;owned\\x07');
    expect(r.stdout).toContain('user:line\\x0abreak');
  });

  it('bad input exits 2 and names the flag', async () => {
    const cases: [string[], RegExp][] = [
      [['audit', 'search', '--since', 'yesterday'], /--since.*must be ISO 8601/],
      [['audit', 'search', '--until', '2026-02-30'], /--until/],
      [['audit', 'search', '--outcome', 'ok'], /--outcome.*success, failure or refused/],
      [['audit', 'search', '--limit', '501'], /--limit.*1 to 500/],
      [['audit', 'search', '--before', 'x'], /--before/],
      [['audit', 'search', '--actor', ''], /--actor/],
      [['audit', 'search', '--colour', 'red'], /unknown option '--colour'/],
      [['audit', 'tail', '-n', '0'], /--lines/],
      [['audit', 'export', '--format', 'csv'], /--since/],
      [['audit', 'export', '--since', '-1h', '--format', 'xml'], /--format.*jsonl or csv/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args, env, 120_000)));
    cases.forEach(([args, message], i) => {
      expect({ args, code: results[i].code }).toEqual({ args, code: 2 });
      expect(results[i].stderr).toMatch(message);
      expect(results[i].stderr).not.toMatch(/\n\s+at /); // no stack trace
    });
  }, 180_000);

  it('tail prints the last N oldest first; -f prints events committed later, in commit order, and ends on SIGINT', async () => {
    const last = await runCli(['audit', 'tail', '-n', '2', '--json'], env);
    expect(json(last.stdout).map((e) => e.action)).toEqual(['group.rotate', 'sign-in']);
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '-r', join(ROOT, 'test/fault/ts-register.js'), join(ROOT, 'server/cli/main.ts'), 'audit', 'tail', '-n', '1', '-f', '--json'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      const deadline = Date.now() + 30_000;
      while (!out.includes('"sign-in"') && Date.now() < deadline) await sleep(50);
      for (let i = 0; i < 3; i++) await store.transaction((t) => t.audit.append({ actor: 'later', action: `late.${i}`, outcome: 'success' }));
      while (json(out).length < 4 && Date.now() < deadline) await sleep(50);
      expect(json(out).map((e) => e.action)).toEqual(['sign-in', 'late.0', 'late.1', 'late.2']);
      const seqs = json(out).map((e) => e.seq as number);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  });

  it('export draws its progress bar on a terminal (stderr a TTY), and only there', async () => {
    const out = join(dir, 'tty.jsonl');
    // util-linux `script` runs the command on a pseudo-terminal and copies what it prints.
    const cmd = [process.execPath, '--disable-warning=ExperimentalWarning', '-r', join(ROOT, 'test/fault/ts-register.js'), join(ROOT, 'server/cli/main.ts'), 'audit', 'export', '--since', '2000-01-01', '--output', out].join(' ');
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', TERM: 'dumb', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let tty = '';
    child.stdout.on('data', (d) => (tty += d));
    expect(await new Promise((resolve) => child.on('close', resolve))).toBe(0);
    const n = readFileSync(out, 'utf8').trim().split('\n').length;
    expect(tty).toContain(`\r[${'#'.repeat(30)}] ${n}/${n} `);
    expect(tty).toMatch(/\d+\/s ETA/);
    expect(tty).toContain(`exported ${n} events to ${out}`);
  }, 120_000);

  it('exports 100,000 events as CSV and JSONL in bounded memory; CSV escaping survives a reader', async () => {
    const nasty = { actor: 'Doe, "Jane"', action: 'note', outcome: 'success' as const, targetType: 'user', targetId: 'multi\nline,"id"\r\nend', detail: { reason: 'a, "quoted"\nvalue' } };
    await store.transaction((t) => t.audit.append(nasty));
    const TOTAL = 100_000;
    let smallUntil = '';
    // Group-committed like the key API's events: a few hundred rows per transaction.
    for (let i = 0; i < TOTAL; i += 5000) {
      if (i === 10_000) {
        await sleep(5);
        smallUntil = new Date().toISOString();
        await sleep(5);
      }
      await Promise.all(Array.from({ length: Math.min(5000, TOTAL - i) }, (_, j) => store.auditCommitted({ actor: `bulk-${(i + j) % 97}`, action: 'password-key.unwrap', outcome: 'success', targetType: 'user', targetId: `u-${i + j}`, detail: { n: i + j } })));
    }
    const all = await countAudit(store, {});
    expect(all).toBeGreaterThan(TOTAL);
    const since = '2000-01-01';
    const csvFile = join(dir, 'all.csv');
    const big = await runWithPeakRss(['audit', 'export', '--since', since, '--format', 'csv', '--output', csvFile], env);
    expect(big.stderr).toContain(`exported ${all} events`);
    expect(big.code).toBe(0);
    // No progress bar when stderr is not a terminal.
    expect(big.stderr).not.toMatch(/\r|\[#/);
    expect(existsSync(`${csvFile}.partial`)).toBe(false);

    const rows = parseCsv(readFileSync(csvFile, 'utf8'));
    expect(rows[0]).toEqual(['seq', 'id', 'at', 'actor', 'action', 'outcome', 'targetType', 'targetId', 'requestId', 'kekUri', 'detail', 'prevHash', 'hash']);
    expect(rows).toHaveLength(1 + all);
    const header = rows[0];
    const col = (r: string[], name: string) => r[header.indexOf(name)];
    const back = rows.find((r) => col(r, 'action') === 'note')!;
    expect(col(back, 'actor')).toBe(nasty.actor);
    expect(col(back, 'targetId')).toBe(nasty.targetId);
    expect(JSON.parse(col(back, 'detail'))).toEqual(nasty.detail);
    const ids = rows.slice(1).map((r) => Number(col(r, 'id')));
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1])).toBe(true);
    expect(new Set(rows.slice(1).filter((r) => col(r, 'actor').startsWith('bulk-')).map((r) => col(r, 'targetId'))).size).toBe(TOTAL);

    // Memory: the same command over the first ~10,000 events and over all of them peaks alike (one batch of 1,000 rows in memory).
    // Both with the V8 heap capped at 64 MB (start-up needs about 40): holding the export could not fit.
    const capped = { ...env, NODE_OPTIONS: '--max-old-space-size=64' };
    const small = await runWithPeakRss(['audit', 'export', '--since', since, '--until', smallUntil, '--format', 'jsonl', '--output', join(dir, 'small.jsonl')], capped);
    const large = await runWithPeakRss(['audit', 'export', '--since', since, '--format', 'jsonl', '--output', join(dir, 'all.jsonl')], capped);
    expect(small.code).toBe(0);
    expect(large.code).toBe(0);
    const jsonlBytes = readFileSync(join(dir, 'all.jsonl')).length;
    const deltaKb = large.peakKb - small.peakKb;
    console.log(`${kind}: export peak RSS ${small.peakKb} kB (${readFileSync(join(dir, 'small.jsonl'), 'utf8').trim().split('\n').length} events) vs ${large.peakKb} kB (${all} events, ${Math.round(jsonlBytes / 1024)} kB of JSONL): +${deltaKb} kB`);
    expect(jsonlBytes).toBeGreaterThan(20 * 1024 * 1024);
    // Holding the export would take its 35 MB of text plus 100,000 row objects; streaming stays within garbage-collection noise (measured +6 to +27 MB).
    expect(deltaKb).toBeLessThan(40 * 1024);
    const lines = readFileSync(join(dir, 'all.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(all);
    expect(JSON.parse(lines.find((l) => l.includes('"note"'))!)).toMatchObject({ actor: nasty.actor, targetId: nasty.targetId, detail: nasty.detail });
    expect(readdirSync(dir).filter((f) => f.endsWith('.partial'))).toEqual([]);

    // A reader that goes away early (`| head`) ends the export quietly, exit 0.
    const cli = [process.execPath, '--disable-warning=ExperimentalWarning', '-r', join(ROOT, 'test/fault/ts-register.js'), join(ROOT, 'server/cli/main.ts')].join(' ');
    const piped = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn('bash', ['-c', `set -o pipefail; ${cli} audit export --since ${since} | head -c 100 > /dev/null`], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr.on('data', (d) => (stderr += d));
      c.on('close', (code) => resolve({ code, stderr }));
    });
    expect(piped).toEqual({ code: 0, stderr: '' });
  }, 600_000);
});
