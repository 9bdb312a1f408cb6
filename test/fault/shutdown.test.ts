import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { DATABASE_FACTORIES, testDatabaseNames, type DatabaseName } from '../support/databases';
import { VaultEmulator } from '../emulators/vault';
import { alive, listening, oneTimeCode, provisionUser, sleep, startServe, tokenRequestBody, type ClusterProcess } from '../cluster/support';
import { createDataSource } from '../../entities/data-source';
import { createSoftHsm, type RawApi } from '../support/softhsm';
import { createAdapter } from '../../kms-adapters/pkcs11';
import { serve } from '../../server/cli/serve';
import { CLOSE_BOUND_MS } from '../../server/shutdown';
import { GroupCommit } from '../../server/repositories/group-commit';

/**
 * SIGTERM on a real `crypto-server serve` process (from source): requests in flight — slowed by
 * a KMS emulator delay — finish with 200 and their audit rows are committed; new connections are
 * refused at once; the process exits 0 within the bound; a request longer than
 * CS_SHUTDOWN_TIMEOUT_MS is cut and the process still exits. In cluster mode the primary passes the
 * signal on and waits for its workers. PKCS#11 sessions are closed (SoftHSM2, in process).
 */
jest.setTimeout(240_000);

const SHUTDOWN_TIMEOUT_MS = 6000;
const KMS_DELAY_MS = 2000;
/** Scheduling slack on a shared 2-core machine. */
const SLACK_MS = 3000;

interface Setup {
  p: ClusterProcess;
  vault: VaultEmulator;
  token: string;
  db: Awaited<ReturnType<(typeof DATABASE_FACTORIES)[DatabaseName]>>;
}

async function setUp(kind: DatabaseName, workers: number, env: Record<string, string> = {}): Promise<Setup> {
  const vault = await new VaultEmulator().start();
  vault.addKey('kek');
  const db = await DATABASE_FACTORIES[kind]();
  const p = await startServe({
    workers,
    db,
    env: {
      CS_KEK_URI: `vault-transit://${vault.hostPort}/transit/keys/kek`,
      CS_VAULT_TOKEN: 'root-test-token',
      CS_VAULT_SCHEME: 'http',
      CS_KMS_TIMEOUT_MS: '60000',
      CS_KMS_DEADLINE_MS: '60000',
      CS_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      ...env,
    },
  });
  if (!(await listening(p))) throw new Error(`serve exited: ${p.stdout()}\n${p.stderr()}`);
  const userName = await provisionUser(p, randomUUID().slice(0, 8));
  const { code, verifier } = await oneTimeCode(p, userName);
  const body = tokenRequestBody(code, verifier);
  const res = await fetch(`${p.url}/oauth/token`, { method: 'POST', headers: { 'content-type': body.type }, body: body.text });
  if (res.status !== 200) throw new Error(`token answered ${res.status}: ${await res.text()}`);
  const { access_token: token } = (await res.json()) as { access_token: string };
  return { p, vault, token, db };
}

/** GET /api/keys/me (one KMS unwrap, audited) with our own request id; never rejects. */
async function keyBundle(s: Setup, requestId: string): Promise<{ status: number; hasKey: boolean } | { error: string }> {
  try {
    const res = await fetch(`${s.p.url}/api/keys/me`, { headers: { authorization: `Bearer ${s.token}`, 'x-request-id': requestId, connection: 'close' } });
    const body = (await res.json()) as { passwordKey?: string };
    return { status: res.status, hasKey: typeof body.passwordKey === 'string' && body.passwordKey.length > 0 };
  } catch (err) {
    return { error: String((err as Error).cause ?? err) };
  }
}

function connectRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Successful key-bundle audit rows by request id, read after the server exited. */
async function auditedRequests(s: Setup): Promise<Set<string>> {
  const ds = createDataSource(s.db.config);
  await ds.initialize();
  try {
    const rows = (await ds.query(`SELECT request_id, action, outcome FROM audit_events`)) as { request_id: string; action: string; outcome: string }[];
    return new Set(rows.filter((r) => r.action === 'key-bundle.get' && r.outcome === 'success').map((r) => r.request_id));
  } finally {
    await ds.destroy();
  }
}

describe.each(testDatabaseNames())('graceful shutdown of serve (%s)', (kind) => {
  const open: Setup[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) {
      await s.p.close(); // drops the database too
      await s.vault.close();
    }
  });

  test.each([1, 2])('CS_WORKERS=%i: in-flight requests finish with 200 and are audited, new connections refused, exit 0 in time', async (workers) => {
    const s = await setUp(kind, workers);
    open.push(s);
    const before = s.vault.faults.requests;
    s.vault.faults.delayMs = KMS_DELAY_MS;
    s.vault.faults.delayNext = 3;
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    let settled = 0;
    const inFlight = ids.map((id) => keyBundle(s, id).finally(() => settled++));
    await waitFor('three unwraps at the KMS', () => s.vault.faults.requests - before >= 3);

    const signalled = performance.now();
    const exited = s.p.signal('SIGTERM');
    // The listening socket closes while the slow requests are still being served.
    await waitFor('new connections to be refused', () => connectRefused(s.p.port), 3000);
    expect(settled).toBe(0);

    const results = await Promise.all(inFlight);
    for (const r of results) expect(r).toEqual({ status: 200, hasKey: true });
    expect(await exited).toBe(0);
    const took = performance.now() - signalled;
    expect(took).toBeLessThan(KMS_DELAY_MS + SLACK_MS);
    for (const pid of [s.p.pid]) expect(alive(pid)).toBe(false);

    // Every answered request's audit row was committed before the pool closed.
    const audited = await auditedRequests(s);
    for (const id of ids) expect(audited.has(id)).toBe(true);
    expect(s.p.stdout() + s.p.stderr()).not.toMatch(/did not finish in time|were cut/);
  });

  test('a request longer than CS_SHUTDOWN_TIMEOUT_MS is cut and the process still exits', async () => {
    const s = await setUp(kind, 1, { CS_LOG_LEVEL: 'warn' });
    open.push(s);
    const before = s.vault.faults.requests;
    s.vault.faults.delayMs = 60_000; // hung, for all the shutdown cares
    s.vault.faults.delayNext = 1;
    const slow = keyBundle(s, randomUUID());
    await waitFor('the unwrap at the KMS', () => s.vault.faults.requests - before >= 1);

    const signalled = performance.now();
    const code = await s.p.signal('SIGTERM');
    const took = performance.now() - signalled;
    expect(code).toBe(0);
    expect(took).toBeGreaterThanOrEqual(SHUTDOWN_TIMEOUT_MS - 100);
    expect(took).toBeLessThan(SHUTDOWN_TIMEOUT_MS + CLOSE_BOUND_MS + SLACK_MS);
    const r = await slow;
    expect('error' in r).toBe(true); // the connection was closed without an answer
    expect(s.p.stdout()).toMatch(/requests still running at CS_SHUTDOWN_TIMEOUT_MS were cut/);
    // An unanswered request's audit row may or may not exist; the database is intact and readable.
    await auditedRequests(s);
  });
});

describe('shutdown closes the PKCS#11 sessions (SoftHSM2)', () => {
  test('the library is finalised (every session closed, logged out) once serve stops', async () => {
    const hsm = createSoftHsm(['cs-shutdown']);
    const dir = mkdtempSync(join(tmpdir(), 'cs-shutdown-'));
    const mod = (await import('pkcs11js')) as RawApi & { default?: RawApi };
    const api = mod.default ?? mod;
    /** Our own handle on the library: C_Initialize says whether someone else holds it initialised. */
    const probe = (): { held: boolean; sessions?: number } => {
      const p11 = new api.PKCS11();
      p11.load(hsm.module);
      try {
        p11.C_Initialize({ flags: api.CKF_OS_LOCKING_OK });
      } catch (err) {
        if ((err as Error).message !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw err;
        const slot = p11.C_GetSlotList(true).find((x) => p11.C_GetTokenInfo(x).label.trimEnd() === 'cs-shutdown')!;
        return { held: true, sessions: p11.C_GetTokenInfo(slot).sessionCount };
      }
      p11.C_Finalize();
      return { held: false };
    };
    try {
      const setup = await createAdapter({ settings: { module: hsm.module, pin: hsm.pin, token: 'cs-shutdown' } });
      const kekUri = await setup.createKey!('kek');
      await setup.close();
      expect(probe().held).toBe(false);

      const running = await serve(
        { CS_DATA_DIR: join(dir, 'data'), CS_PORT: '0', CS_LOG_LEVEL: 'silent', CS_KEK_URI: kekUri, CS_PKCS11_MODULE: hsm.module, CS_PKCS11_PIN: hsm.pin, CS_PKCS11_TOKEN: 'cs-shutdown', CS_SHUTDOWN_TIMEOUT_MS: '2000' },
        () => undefined,
      );
      // /readyz makes a real KMS round trip on a logged-in session.
      expect((await fetch(`${running.url}/readyz`)).status).toBe(200);
      const during = probe();
      expect(during.held).toBe(true);
      expect(during.sessions).toBeGreaterThan(0);

      expect(await running.stop()).toBe(true);
      expect(probe()).toEqual({ held: false });
    } finally {
      rmSync(dir, { recursive: true, force: true });
      hsm.cleanup();
    }
  });
});

describe('GroupCommit.idle (what store.close waits for)', () => {
  test('resolves only after the batch in flight and the rows queued behind it are written', async () => {
    const written: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const batches = new GroupCommit<number>(async (rows) => {
      await gate;
      written.push(...rows);
    });
    await batches.idle(); // nothing in flight: at once
    const adds = [batches.add(1), batches.add(2)];
    let idle = false;
    const waiting = batches.idle().then(() => (idle = true));
    await sleep(50);
    expect(idle).toBe(false);
    release();
    await waiting;
    expect(written).toEqual([1, 2]);
    await Promise.all(adds);
  });
});
