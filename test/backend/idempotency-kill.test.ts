import type { DataSource } from 'typeorm';
import { createDataSource } from '../../entities/data-source';
import { GroupEntity, IdempotencyEntity } from '../../entities';
import { CLAIM_LEASE_MS } from '../../backend/idempotency';
import { DATABASE_FACTORIES, testDatabaseNames, type TestDatabase } from '../support/databases';
import { VaultEmulator } from '../emulators/vault';
import { TcpProxy } from '../fault/tcp-proxy';
import { cli, listening, sleep, startServe, type ClusterProcess } from '../cluster/support';

/**
 * A real `serve` process killed (SIGKILL) while it holds an Idempotency-Key: its claim blocks the
 * key only until its lease runs out, and then the retry creates the one group.
 */
jest.setTimeout(240_000);

describe.each(testDatabaseNames())('Idempotency-Key after SIGKILL of the server (%s)', (name) => {
  let db: TestDatabase;
  let ds: DataSource | undefined;
  let vault: VaultEmulator;
  let proxy: TcpProxy;
  const procs: ClusterProcess[] = [];
  afterAll(async () => {
    for (const p of procs) await p.close();
    await ds?.destroy();
    await proxy?.close();
    await vault?.close();
    await db?.drop();
  });

  it('the retry gets 409 + Retry-After until the lease ends, then runs once', async () => {
    db = await DATABASE_FACTORIES[name]();
    vault = await new VaultEmulator().start();
    vault.addKey('kek');
    proxy = await new TcpProxy(Number(vault.hostPort.split(':')[1])).start();
    // The KEK behind a proxy the test can hang: the group create then waits in its KMS call, claim taken.
    const env = { CS_KEK_URI: `vault-transit://${proxy.hostPort}/transit/keys/kek`, CS_VAULT_TOKEN: 'root-test-token', CS_VAULT_SCHEME: 'http', CS_KMS_TIMEOUT_MS: '120000', CS_KMS_DEADLINE_MS: '120000' };
    const serve = async () => {
      const p = await startServe({ workers: 1, db: { ...db, drop: async () => undefined }, env });
      procs.push(p);
      if (!(await listening(p))) throw new Error(p.stderr());
      return p;
    };
    const first = await serve();
    const token = (await cli(first, ['token', 'create', '--scope', 'backend', '--name', 'kill-test'])).split('\n')[0]!.trim();
    const body = JSON.stringify({ name: 'Killed mid-request', members: [] });
    const post = (p: ClusterProcess) => fetch(`${p.url}/backend/v1/groups`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': 'kill-1' }, body });

    ds = createDataSource(db.config);
    await ds.initialize();
    proxy.hang();
    const inFlight = post(first).then(
      (r) => r.status,
      () => 'connection lost',
    );
    for (let i = 0; i < 200 && !(await ds.manager.findOneBy(IdempotencyEntity, { idemKey: 'kill-1' })); i++) await sleep(50);
    expect(await ds.manager.findOneBy(IdempotencyEntity, { idemKey: 'kill-1' })).toMatchObject({ status: null });
    process.kill(-first.pid, 'SIGKILL'); // the server's own process group, started above
    expect(await inFlight).toBe('connection lost');
    await proxy.restore();

    const second = await serve();
    const early = await post(second);
    expect(early.status).toBe(409);
    expect(((await early.json()) as { code: string }).code).toBe('idempotency_in_progress');
    expect(Number(early.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await ds.manager.countBy(GroupEntity, { displayName: 'Killed mid-request' })).toBe(0);

    // The lease's length passes (the claim's times moved back by it; a 24-hour claim would still hold).
    const claim = (await ds.manager.findOneBy(IdempotencyEntity, { idemKey: 'kill-1' }))!;
    const back = (t: string) => new Date(Date.parse(t) - CLAIM_LEASE_MS - 1000).toISOString();
    await ds.manager.update(IdempotencyEntity, { idemKey: 'kill-1' }, { createdAt: back(claim.createdAt), expiresAt: back(claim.expiresAt) });
    const late = await post(second);
    expect(late.status).toBe(201);
    const again = await post(second);
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await ds.manager.countBy(GroupEntity, { displayName: 'Killed mid-request' })).toBe(1);
  });
});
