import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { s256Challenge } from '../../server/auth/pkce';
import type { TestDatabase } from '../support/databases';
import { TestIdp } from '../support/saml-idp';
import { samlServerEnv } from '../support/saml-server-env';
import { freePort } from '../bench/http/processes';
import { runCli } from '../fault/cli-process';
import { entraCreateUser, SCIM_JSON } from '../bench/http/scim-requests';

const ROOT = join(__dirname, '..', '..');
export const CLIENT = { clientId: 'cluster-test', redirectUri: 'http://127.0.0.1/callback' };

/** A `crypto-server serve` process tree started by a test, in its own process group. */
export interface ClusterProcess {
  pid: number;
  child: ChildProcess;
  url: string;
  port: number;
  env: Record<string, string>;
  idp: TestIdp;
  stdout: () => string;
  stderr: () => string;
  /** The primary's live children (the workers). */
  workerPids: () => number[];
  /** Sends `signal` to the primary alone and resolves with its exit code. */
  signal: (signal: NodeJS.Signals) => Promise<number | null>;
  /** Stops whatever is left of the group, closes the IdP, drops the database, removes files. */
  close: () => Promise<void>;
}

/** Runs the CLI from source (swc) as `serve` with CS_WORKERS etc.; resolves once it printed its URL. */
export async function startServe(opts: { workers: number; db?: TestDatabase; port?: number; env?: Record<string, string> }): Promise<ClusterProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'cs-cluster-'));
  const port = opts.port ?? (await freePort());
  const { idp, url, env: serverEnv } = await samlServerEnv({ dir, port, spName: 'crypto-server-cluster-sp', client: CLIENT });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    CS_WORKERS: String(opts.workers),
    ...serverEnv,
    ...(opts.db && opts.db.name !== 'sqlite' ? { CS_DATABASE_URL: opts.db.url, CS_MIGRATE_ON_START: 'true', CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64') } : {}),
    ...(opts.db?.name === 'sqlite' ? { CS_DATABASE_URL: opts.db.url, CS_MIGRATE_ON_START: 'true', CS_LOCAL_CREATE_MASTER_KEY: 'true' } : {}),
    ...opts.env,
  };
  // Its own process group, so that whatever a failed test leaves behind is stopped by group id.
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '-r', join(__dirname, 'ts-register.js'), join(ROOT, 'server/cli/main.ts'), 'serve'], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  const pid = child.pid!;
  const killGroup = () => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the group is gone already
    }
  };
  let closing: Promise<void> | undefined;
  const proc: ClusterProcess = {
    pid,
    child,
    url,
    port,
    env,
    idp,
    stdout: () => out,
    stderr: () => err,
    workerPids: () => childrenOf(pid),
    signal: async (signal) => {
      if (child.exitCode === null && child.signalCode === null) process.kill(pid, signal);
      const [code] = await exited;
      return code;
    },
    close: () =>
      (closing ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          process.kill(pid, 'SIGTERM');
          const timer = setTimeout(killGroup, 15_000);
          await exited;
          clearTimeout(timer);
        }
        killGroup(); // workers orphaned by a failed test
        await idp.close();
        await opts.db?.drop();
        rmSync(dir, { recursive: true, force: true });
      })()),
  };
  return proc;
}

/** Waits until the process printed its listening line (or exits first: then resolves to false). */
export async function listening(p: ClusterProcess, timeoutMs = 90_000): Promise<boolean> {
  return printed(p, /listening on http/, timeoutMs);
}

/** Waits until stdout matches `re` (true) or the process ends first (false). */
export async function printed(p: ClusterProcess, re: RegExp, timeoutMs = 90_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (re.test(p.stdout())) return true;
    if (p.child.exitCode !== null || p.child.signalCode !== null) return false;
    await sleep(100);
  }
  throw new Error(`stdout did not match ${re} within ${timeoutMs} ms:\n${p.stdout()}\n${p.stderr()}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Which of `pids` holds the server end of the TCP connection from local port `clientPort` to
 * `serverPort` (Linux /proc: the socket's inode in /proc/net/tcp, then each process's fds).
 */
export async function servingPid(serverPort: number, clientPort: number, pids: number[]): Promise<number> {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  for (let i = 0; i < 50; i++) {
    const inode = readFileSync('/proc/net/tcp', 'utf8')
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .find((f) => f[1]?.endsWith(`:${hex(serverPort)}`) && f[2]?.endsWith(`:${hex(clientPort)}`))?.[9];
    if (inode) {
      for (const pid of pids) {
        try {
          if (readdirSync(`/proc/${pid}/fd`).some((fd) => safeReadlink(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`)) return pid;
        } catch {
          // gone
        }
      }
    }
    await sleep(50); // the primary hands the accepted socket to a worker asynchronously
  }
  throw new Error(`no process among ${pids.join(',')} holds the connection from port ${clientPort}`);
}

function safeReadlink(p: string): string | undefined {
  try {
    return readlinkSync(p);
  } catch {
    return undefined;
  }
}

/** One TCP connection, for requests that must land on a known worker. */
export class Conn {
  private constructor(
    private readonly socket: Socket,
    readonly localPort: number,
  ) {}

  static async open(port: number): Promise<Conn> {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return new Conn(socket, socket.localPort!);
  }

  /** Sends one request with `Connection: close` and reads the whole answer. */
  async request(method: string, path: string, body?: { type: string; text: string }, extraHeaders: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    const chunks: Buffer[] = [];
    this.socket.on('data', (c: Buffer) => chunks.push(c));
    const ended = once(this.socket, 'end');
    const head = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
    for (const [k, v] of Object.entries(extraHeaders)) head.push(`${k}: ${v}`);
    if (body) head.push(`Content-Type: ${body.type}`, `Content-Length: ${Buffer.byteLength(body.text)}`);
    this.socket.write(`${head.join('\r\n')}\r\n\r\n${body?.text ?? ''}`);
    await ended;
    this.socket.destroy();
    const raw = Buffer.concat(chunks).toString('utf8');
    const [headers, ...rest] = raw.split('\r\n\r\n');
    let text = rest.join('\r\n\r\n');
    if (/transfer-encoding:\s*chunked/i.test(headers!)) text = dechunk(text);
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(headers!)?.[1]), body: text };
  }

  close(): void {
    this.socket.destroy();
  }
}

function dechunk(s: string): string {
  let out = '';
  let rest = s;
  for (;;) {
    const i = rest.indexOf('\r\n');
    const size = parseInt(rest.slice(0, i), 16);
    if (!size) return out;
    out += rest.slice(i + 2, i + 2 + size);
    rest = rest.slice(i + 2 + size + 2);
  }
}

/** Two open connections served by two different workers. */
export async function connectionsOnTwoWorkers(p: ClusterProcess): Promise<[Conn, Conn, number, number]> {
  const first = await Conn.open(p.port);
  const firstPid = await servingPid(p.port, first.localPort, p.workerPids());
  const spare: Conn[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const c = await Conn.open(p.port);
      const pid = await servingPid(p.port, c.localPort, p.workerPids());
      if (pid !== firstPid) return [first, c, firstPid, pid];
      spare.push(c);
    }
  } finally {
    spare.forEach((c) => c.close());
  }
  first.close();
  throw new Error('every connection went to one worker');
}

/**
 * The sign-in flow up to the one-time code: /oauth/authorize → the IdP's SAML response posted to
 * the ACS → the code on the loopback redirect. Returns the code and the PKCE verifier to redeem it.
 */
export async function oneTimeCode(p: ClusterProcess, nameId: string): Promise<{ code: string; verifier: string }> {
  const verifier = randomBytes(32).toString('base64url');
  const authorize = new URL('/oauth/authorize', p.url);
  for (const [k, v] of Object.entries({ response_type: 'code', client_id: CLIENT.clientId, redirect_uri: CLIENT.redirectUri, code_challenge: s256Challenge(verifier), code_challenge_method: 'S256', state: 's1' })) {
    authorize.searchParams.set(k, v);
  }
  const toIdp = await fetch(authorize, { redirect: 'manual' });
  const idpUrl = toIdp.headers.get('location');
  if (toIdp.status !== 302 || !idpUrl) throw new Error(`authorize answered ${toIdp.status}: ${await toIdp.text()}`);
  const { request, relayState } = TestIdp.parseRedirect(idpUrl);
  const form = new URLSearchParams({ SAMLResponse: await p.idp.respond(request, { nameId }) });
  if (relayState !== undefined) form.set('RelayState', relayState);
  const acs = await fetch(new URL('/auth/saml/acs', p.url), { method: 'POST', body: form, redirect: 'manual' });
  const back = acs.headers.get('location');
  if (acs.status !== 303 || !back) throw new Error(`ACS answered ${acs.status}: ${await acs.text()}`);
  const code = new URL(back).searchParams.get('code');
  if (!code) throw new Error(`no code in ${back}`);
  return { code, verifier };
}

export function tokenRequestBody(code: string, verifier: string): { type: string; text: string } {
  const text = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: CLIENT.redirectUri, client_id: CLIENT.clientId, code_verifier: verifier }).toString();
  return { type: 'application/x-www-form-urlencoded', text };
}

/** A SCIM token made as an administrator makes one (`crypto-server token create`), from source. */
export async function scimToken(p: ClusterProcess): Promise<string> {
  const token = (await cli(p, ['token', 'create', '--scope', 'scim', '--name', 'cluster-test'])).split('\n')[0]?.trim();
  if (!token) throw new Error('token create printed no token');
  return token;
}

/** Runs another `crypto-server` command (from source) with the cluster's settings; resolves with its stdout. */
export async function cli(p: ClusterProcess, args: string[]): Promise<string> {
  const r = await runCli(args, p.env, 120_000, join(__dirname, 'ts-register.js'));
  if (r.code !== 0) throw new Error(`${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Provisions `Test_User_<id>` with Entra's "Create User" body (test/bench/http/scim-requests.ts cites it). */
export async function provisionUser(p: ClusterProcess, id: string): Promise<string> {
  const token = await scimToken(p);
  const res = await fetch(`${p.url}/scim/v2/Users`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': SCIM_JSON }, body: entraCreateUser(id) });
  if (res.status !== 201) throw new Error(`SCIM create answered ${res.status}: ${await res.text()}`);
  return `Test_User_${id}`;
}
