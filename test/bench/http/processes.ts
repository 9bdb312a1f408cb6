import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { once } from 'node:events';

/** A process this benchmark started; stopped only through its own pid. */
export interface Started {
  pid: number;
  /** The URL the process printed once it was listening. */
  url: string;
  /** Recent output lines, for the error message when something fails. */
  tail: () => string;
  stop: () => Promise<void>;
}

/** How to tell a started process is ready: a stdout line (its first group is the URL), or a URL that answers 2xx. */
export type Readiness = { line: RegExp } | { url: string; probePath: string };

/**
 * Starts `node <script> ...args` and waits until it is ready. Output is drained continuously so a
 * chatty child never blocks on a full pipe; the last lines go into the error if it fails to start.
 */
export async function startNode(script: string, args: string[], env: NodeJS.ProcessEnv, ready: Readiness, opts: { timeoutMs?: number; nodeArgs?: string[] } = {}): Promise<Started> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(l);
    if (lines.length > 40) lines.splice(0, lines.length - 40);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const tail = () => lines.join('\n');
  let settled = false;
  const url = await new Promise<string>((resolve, reject) => {
    const done = (err: Error | undefined, value?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.off('exit', onExit);
      if (!err) return resolve(value!);
      void stopChild(child).then(() => reject(new Error(`${err.message}\n${tail()}`)));
    };
    const timer = setTimeout(() => done(new Error(`${script} was not ready within ${timeoutMs} ms`)), timeoutMs);
    const onExit = (code: number | null) => done(new Error(`${script} exited (${code}) before it was ready`));
    child.once('exit', onExit);
    if ('line' in ready) {
      const onLine = (chunk: Buffer) => {
        const m = ready.line.exec(chunk.toString('utf8'));
        if (m) {
          child.stdout!.off('data', onLine);
          done(undefined, m[1]!);
        }
      };
      child.stdout!.on('data', onLine);
    } else {
      const probe = async () => {
        while (!settled) {
          const ok = await fetch(`${ready.url}${ready.probePath}`).then((r) => r.body?.cancel().then(() => r.ok) ?? r.ok, () => false);
          if (ok) return done(undefined, ready.url);
          await new Promise((r) => setTimeout(r, 200));
        }
      };
      void probe();
    }
  });
  return { pid: child.pid!, url, tail, stop: () => stopChild(child) };
}

/** SIGTERM by pid, SIGKILL after 10 s if the process has not exited. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = once(child, 'exit');
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Runs `node <script> ...args` to completion; resolves with its stdout, rejects on a non-zero exit. */
export async function runNode(script: string, args: string[], env: NodeJS.ProcessEnv, stdin?: string): Promise<string> {
  const child = spawn(process.execPath, [script, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  child.stdin.end(stdin ?? '');
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${script} ${args.join(' ')} exited ${code}: ${Buffer.concat(err).toString('utf8').slice(-2000)}`);
  return Buffer.concat(out).toString('utf8');
}

/**
 * A TCP port that was free a moment ago (the server is told its port, so its public URL can name it).
 * Picked below Linux's ephemeral range (32768–60999): a port the kernel hands out with listen(0) can
 * be taken, before the server binds it, as the local port of any outgoing connection — a test's
 * database connections, say ("port … is already in use" in a parallel run).
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canBind(port)) return port;
  }
  return boundPort(0);
}

async function canBind(port: number): Promise<boolean> {
  try {
    return (await boundPort(port)) === port;
  } catch {
    return false;
  }
}

async function boundPort(port: number): Promise<number> {
  const s = createServer();
  s.listen(port, '127.0.0.1');
  await once(s, 'listening'); // rejects on 'error' (EADDRINUSE)
  const bound = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return bound;
}

/** `read(pid)` of a process and each of its descendants (Linux /proc), parent first; a gone process is left out. */
function eachInTree(pid: number, read: (p: number) => number): Map<number, number> {
  const values = new Map<number, number>();
  const visit = (p: number) => {
    try {
      values.set(p, read(p));
      for (const t of readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').split(/\s+/).filter(Boolean)) visit(Number(t));
    } catch {
      // the process has gone: it counts for nothing
    }
  };
  visit(pid);
  return values;
}

/** Sums `read(pid)` over a process and all its descendants. */
function overTree(pid: number, read: (p: number) => number): number {
  let total = 0;
  for (const v of eachInTree(pid, read).values()) total += v;
  return total;
}

/** Resident memory of a process and all its descendants, in bytes. */
export function treeRss(pid: number): number {
  return overTree(pid, (p) => Number(/VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) * 1024);
}

/**
 * CPU time (user + system) a process and its descendants have used so far, in ms. Per request it
 * is the figure that a busy machine distorts least: req/s falls when other processes take the
 * cores, CPU time per request hardly moves.
 */
export function treeCpuMs(pid: number): number {
  return overTree(pid, cpuMsOf);
}

/** CPU ms so far of each process in the tree (the server's primary, then its workers), by pid. */
export function treeCpuMsByProcess(pid: number): Map<number, number> {
  return eachInTree(pid, cpuMsOf);
}

function cpuMsOf(pid: number): number {
  const ticksPerSecond = 100; // USER_HZ on Linux
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command (which may hold spaces), from field 3 on: utime and stime are 14 and 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / ticksPerSecond;
}

/** What a PostgreSQL database has done so far: CPU ms of each backend serving it (by pid), and its commits. */
export interface DatabaseWork {
  backendsCpuMs: Map<number, number>;
  commits: number;
}

/** Reads `DatabaseWork` for `url`'s database, apart from other databases on the same server. */
export async function databaseWork(url: string): Promise<DatabaseWork> {
  const { Client } = await import('pg');
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
    // Statistics reach pg_stat_database within a second or so; over a 5 s run that is close enough.
    const stats = await client.query<{ xact_commit: string }>('SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()');
    return { backendsCpuMs: new Map(rows.map((r) => [r.pid, overTree(r.pid, cpuMsOf)])), commits: Number(stats.rows[0]?.xact_commit ?? 0) };
  } finally {
    await client.end();
  }
}

/** Backend CPU ms and commits between two readings; a backend that ended meanwhile is not counted. */
export function databaseWorkDelta(before: DatabaseWork, after: DatabaseWork): { cpuMs: number; commits: number } {
  let cpuMs = 0;
  for (const [pid, ms] of after.backendsCpuMs) cpuMs += ms - (before.backendsCpuMs.get(pid) ?? 0);
  return { cpuMs, commits: after.commits - before.commits };
}
