import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { KmsRegistry } from '../../kms-adapters/registry';
import { decodeEnvelope } from '../../kms-adapters/envelope';
import { UserEntity, UserKeysEntity, type UserKeysRow, type UserRow } from '../../entities';
import { nowIso } from '../../entities/columns';
import { binding } from '../../server/keys/binding';
import type { Store } from '../../server/repositories/store';
import { ENVELOPE_SOURCES } from '../../server/keks/sources';
import type { CliResult } from '../fault/cli-process';

const ROOT = join(__dirname, '..', '..');

/**
 * Inserts `n` users with password keys wrapped for real under `kekUri` and bound to each user
 * (so every envelope opens, and only for its owner), in multi-row INSERTs: thousands in seconds.
 * Returns each user's plaintext password key, to check what the rewrap produced.
 */
export async function seedPasswordKeys(store: Store, kms: KmsRegistry, kekUri: string, n: number, template: { publicJwk: string; privateJwe: string }): Promise<Map<string, Buffer>> {
  const keys = new Map<string, Buffer>();
  const CHUNK = 250;
  for (let i = 0; i < n; i += CHUNK) {
    const users: UserRow[] = [];
    const rows: UserKeysRow[] = [];
    const now = nowIso();
    for (let j = i; j < Math.min(n, i + CHUNK); j++) {
      const id = randomUUID();
      const pk = randomBytes(32);
      keys.set(id, pk);
      const name = `seed-${j}-${id.slice(0, 8)}@example.com`;
      users.push({ id, userName: name, userNameNorm: name, externalId: null, displayName: null, email: null, givenName: null, familyName: null, active: true, scimAttributes: '{}', createdAt: now, updatedAt: now, deletedAt: null, version: 1 });
      rows.push({ userId: id, keyAlg: 'ECDH-ES+A256KW', publicJwk: template.publicJwk, privateJwe: template.privateJwe, wrappedPasswordKey: await kms.wrap(kekUri, pk, binding.passwordKey(id)), kekUri, createdAt: now });
    }
    await store.transaction(async (t) => {
      await t.manager.createQueryBuilder().insert().into(UserEntity).values(users).execute();
      await t.manager.createQueryBuilder().insert().into(UserKeysEntity).values(rows).execute();
    });
  }
  return keys;
}

/** Envelopes per (table, KEK) read from the rows, and any row whose kek_uri column disagrees with its envelope. */
export async function envelopeCensus(store: Store): Promise<{ byKek: Record<string, number>; mismatched: number; total: number }> {
  const byKek: Record<string, number> = {};
  let mismatched = 0;
  let total = 0;
  const columns: Record<string, [string, string | null]> = {
    user_keys: ['wrapped_password_key', 'kek_uri'],
    group_key_versions: ['wrapped_membership_key', 'kek_uri'],
    group_keys: ['wrapped_membership_key', 'kek_uri'],
    signing_keys: ['wrapped_private_jwk', 'kek_uri'],
    key_connector_user_keys: ['wrapped_key', 'kek_uri'],
    audit_seals: ['envelope', null],
  };
  for (const s of ENVELOPE_SOURCES) {
    const [env, kek] = columns[s.table];
    const rows = (await store.dataSource.query(`SELECT ${env} AS e${kek ? `, ${kek} AS k` : ''} FROM ${s.table}`)) as { e: string; k?: string }[];
    for (const r of rows) {
      const uri = decodeEnvelope(r.e).kekUri;
      if (kek && uri !== r.k) mismatched++;
      byKek[uri] = (byKek[uri] ?? 0) + 1;
      total++;
    }
  }
  return { byKek, mismatched, total };
}

/** `crypto-server <args>` as its own process, killable mid-run (runCli only waits for the end). */
export function startCli(args: string[], env: Record<string, string>): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '-r', join(ROOT, 'test/cluster/ts-register.js'), join(ROOT, 'server/cli/main.ts'), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? -1 : null), stdout, stderr });
    });
  });
  return { child, done };
}

/** Resolves once `cond` holds (polled), or fails after `ms`. */
export async function waitFor(cond: () => Promise<boolean>, ms = 60_000, every = 25): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Waits for `cond` while `run` is still going: a run that ends first fails with its output. */
export function whileRunning(run: Promise<CliResult>, cond: () => Promise<boolean>, ms = 120_000): Promise<void> {
  return Promise.race([
    waitFor(cond, ms),
    run.then((r) => {
      throw new Error(`the command ended first (exit ${r.code}): ${r.stdout}${r.stderr}`);
    }),
  ]);
}

export async function countUnder(store: Store, kekUri: string): Promise<number> {
  const [r] = (await store.dataSource.query(`SELECT COUNT(*) AS n FROM user_keys WHERE kek_uri = ${store.driver === 'postgres' ? '$1' : '?'}`, [kekUri])) as { n: string | number }[];
  return Number(r.n);
}
