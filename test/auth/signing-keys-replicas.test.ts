import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { boot } from '../../server/boot';
import { loadConfig } from '../../server/config';
import { SigningKeyService } from '../../server/auth/signing-keys';
import { DATABASE_FACTORIES, testDatabaseNames, type TestDatabase } from '../support/databases';

type Replica = Awaited<ReturnType<typeof boot>>;
const DAY_MS = 86_400_000;

/**
 * Several replicas (each its own pool of connections to one database) find no token-signing key,
 * or a due one, at the same moment: the first sign-ins of a new deployment, and every
 * CS_TOKEN_KEY_ROTATION_DAYS after. Before generations, PostgreSQL kept every racer's key active
 * and MariaDB failed all but one of the racing sign-ins with a deadlock.
 */
describe.each(testDatabaseNames())('token-signing key rotation on several replicas at once (%s)', (name) => {
  let db: TestDatabase;
  const replicas: Replica[] = [];
  let now = Date.parse('2026-12-01T10:00:00.000Z');
  let services: SigningKeyService[];

  const rows = async (): Promise<{ kid: string; state: string; generation: number }[]> =>
    (await replicas[0]!.store.dataSource.query('SELECT kid, state, generation FROM signing_keys ORDER BY generation')).map((r: { kid: string; state: string; generation: unknown }) => ({ ...r, generation: Number(r.generation) }));
  const rotations = async () => (await replicas[0]!.store.repos.audit.recent(50, { action: 'token-signing-key.rotate' })).map((e) => [e.outcome, e.targetId]);
  /** Two callers per replica at once, as concurrent sign-ins would be. */
  const everyReplicaSigns = () => Promise.allSettled(services.flatMap((s) => [s.signingKey({ actor: 'test' }), s.signingKey({ actor: 'test' })]));
  const kidsOf = (results: PromiseSettledResult<{ kid: string }>[]) => results.map((r) => (r.status === 'fulfilled' ? r.value.kid : `rejected: ${String((r.reason as Error).message)}`));

  beforeAll(async () => {
    db = await DATABASE_FACTORIES[name]();
    const env = { CS_DATABASE_URL: db.url, CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64'), CS_LOG_LEVEL: 'silent' };
    replicas.push(await boot(loadConfig(env), pino({ level: 'silent' }), { migrate: true }));
    for (let i = 0; i < 3; i++) replicas.push(await boot(loadConfig(env), pino({ level: 'silent' })));
    services = replicas.map((r) => new SigningKeyService(r.store, r.kms, { kekUri: r.config.kms.kekUri, rotationDays: 30, tokenTtlSeconds: 300, cacheMs: 0 }, () => new Date(now)));
  });
  afterAll(async () => {
    for (const r of replicas) await r.close();
    await db?.drop();
  });

  test('the first key: one replica creates it, every caller on every replica signs with it', async () => {
    const kids = kidsOf(await everyReplicaSigns());
    expect(kids).toEqual(Array(8).fill(kids[0]));
    expect(kids[0]).not.toMatch(/^rejected/);
    expect(await rows()).toEqual([{ kid: kids[0], state: 'active', generation: 1 }]);
    expect(await rotations()).toEqual([['success', kids[0]]]);
  });

  test('a due key: rotated once, not once per replica', async () => {
    const [first] = await rows();
    now += 31 * DAY_MS;
    const kids = kidsOf(await everyReplicaSigns());
    expect(kids).toEqual(Array(8).fill(kids[0]));
    expect(kids[0]).not.toBe(first!.kid);
    expect(await rows()).toEqual([
      { kid: first!.kid, state: 'retired', generation: 1 },
      { kid: kids[0], state: 'active', generation: 2 },
    ]);
    expect((await rotations()).filter(([o]) => o === 'success')).toHaveLength(2);
  });

  test('explicit rotations at once (the CLI on two hosts): each makes a key, one stays active', async () => {
    now += 1000;
    const made = await Promise.all([services[0]!.rotate({ actor: 'cli' }), services[1]!.rotate({ actor: 'cli' })]);
    expect(new Set(made).size).toBe(2);
    const after = await rows();
    expect(after.map((r) => r.generation)).toEqual([1, 2, 3, 4]);
    expect(after.filter((r) => r.state === 'active')).toHaveLength(1);
    const active = after.find((r) => r.state === 'active')!;
    expect(made).toContain(active.kid);
    expect(active.generation).toBe(4);
    // Every replica signs with it once its view is reloaded.
    expect(new Set((await Promise.all(services.map((s) => s.signingKey({ actor: 'test' })))).map((k) => k.kid))).toEqual(new Set([active.kid]));
  });
});
