import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPostgres, type TestDatabase } from '../../support/databases';
import type { TestIdp } from '../../support/saml-idp';
import { samlServerEnv } from '../../support/saml-server-env';
import { freePort, runNode, startNode, type Started } from './processes';

export type BenchDatabase = 'sqlite' | 'postgres';

/** The built CLI, next to this file in dist/. */
export const MAIN_JS = join(__dirname, '../../../server/cli/main.js');

/** A registered public client with a loopback redirect (a desktop app, RFC 8252). */
export const BENCH_CLIENT = { clientId: 'bench', redirectUri: 'http://127.0.0.1/callback' };

export interface RunningServer {
  /** The server process (`node dist/server/cli/main.js serve`). */
  process: Started;
  url: string;
  env: NodeJS.ProcessEnv;
  idp: TestIdp;
  database: BenchDatabase;
  /** Stops the server by its pid, closes the IdP, drops the database, removes the temp dir. */
  close: () => Promise<void>;
}

/**
 * Starts the built server as its own process: SQLite in a temporary CS_DATA_DIR with the local KEK
 * (the embedded defaults), or a fresh PostgreSQL database made like the tests make theirs. SAML points
 * at the test IdP (run in this process; only its signing key is used), so a real sign-in can run.
 */
export async function startCryptoServer(database: BenchDatabase, opts: { cpuProfileDir?: string; workers?: number; env?: Record<string, string>; nodeArgs?: string[] } = {}): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), 'cs-bench-'));
  let db: TestDatabase | undefined;
  let idp: TestIdp | undefined;
  try {
    const port = await freePort();
    const started = await samlServerEnv({ dir, port, spName: 'crypto-server-bench-sp', client: BENCH_CLIENT });
    idp = started.idp;
    const url = started.url;
    // The caller's own CS_* settings must not leak into the measured server.
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CS_')));
    const env: NodeJS.ProcessEnv = {
      ...inherited,
      ...started.env,
      // Measure the endpoints, not the limiter; one token lasts the whole run.
      CS_SCIM_RATE_LIMIT_PER_MINUTE: '0',
      CS_TOKEN_TTL_SECONDS: '3600',
      // Explicit: serve's default is one worker per CPU, and the bench compares worker counts.
      CS_WORKERS: String(opts.workers ?? 1),
      // Settings a bench option asks for (e.g. --audit-chain off).
      ...opts.env,
    };
    if (database === 'postgres') {
      db = await createPostgres();
      Object.assign(env, { CS_DATABASE_URL: db.url, CS_MIGRATE_ON_START: 'true', CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64') });
    }
    // Ready when /healthz answers (not by parsing its start-up message, which is free to change).
    // --cpu-prof writes the profile when the process exits, which it does on the SIGTERM that stops it.
    const nodeArgs = [...(opts.nodeArgs ?? []), ...(opts.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfileDir}`] : [])];
    const proc = await startNode(MAIN_JS, ['serve'], env, { url, probePath: '/healthz' }, { nodeArgs });
    const theIdp = idp;
    const theDb = db;
    let closing: Promise<void> | undefined;
    return {
      process: proc,
      url,
      env,
      idp: theIdp,
      database,
      close: () =>
        (closing ??= (async () => {
          await proc.stop();
          await theIdp.close();
          await theDb?.drop();
          rmSync(dir, { recursive: true, force: true });
        })()),
    };
  } catch (err) {
    await idp?.close();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A SCIM bearer token made the way an administrator makes one: `crypto-server token create`. */
export async function createScimToken(server: RunningServer): Promise<string> {
  const out = await runNode(MAIN_JS, ['token', 'create', '--scope', 'scim', '--name', 'bench'], server.env);
  const token = out.split('\n')[0]?.trim();
  if (!token) throw new Error(`token create printed no token: ${out}`);
  return token;
}
