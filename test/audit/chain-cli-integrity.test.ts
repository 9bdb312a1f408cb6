import { randomBytes } from 'node:crypto';
import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { join } from 'node:path';
import { runCli as run } from '../fault/cli-process';

/** The cluster tests' loader: it also resolves the KMS adapters' ESM-style imports (buildRegistry). */
const runCli = (args: string[], env: Record<string, string>) => run(args, env, 60_000, join(__dirname, '..', 'cluster', 'ts-register.js'));

/**
 * `crypto-server audit verify|seal|prune` as an operator runs them (own process, real database,
 * local KMS with the server's master key): the printed line and the exit code — 0 intact,
 * 1 broken, 2 usage mistake, 3 could not check.
 */
jest.setTimeout(180_000);

describe.each(testDatabaseNames())('audit integrity CLI (%s)', (kind) => {
  let ctx: TestContext;
  let env: Record<string, string>;
  const masterKey = randomBytes(32).toString('base64');
  beforeAll(async () => {
    ctx = await createTestContext(kind, { CS_LOCAL_MASTER_KEY: masterKey });
    env = { CS_DATABASE_URL: ctx.db.url, CS_LOCAL_MASTER_KEY: masterKey, CS_LOG_LEVEL: 'silent' };
    for (let i = 0; i < 6; i++) await ctx.store.auditCommitted({ actor: 'test', action: 'password-key.unwrap', outcome: 'success', requestId: `cli-${i}` });
  });
  afterAll(async () => ctx?.cleanup());

  test('seal, verify, tamper, verify again, prune refused; bad arguments and a wrong KMS key', async () => {
    const seal = await runCli(['audit', 'seal'], env);
    expect(seal.stdout).toMatch(/^sealed the audit chain at seq 6 \(hash [0-9a-f]{64}\) under local:\/\/default\n$/);
    expect(seal.code).toBe(0);

    const ok = await runCli(['audit', 'verify'], env);
    // Row 7 is the seal's own audit.sealed event (the anchor the forwarder carries out).
    expect(ok).toMatchObject({ code: 0, stdout: 'audit chain intact: 7 rows (seq 1–7), 1 seals verified\n' });
    expect(ok.stderr).toBe('');
    const since = await runCli(['audit', 'verify', '--since', '4'], env);
    expect(since).toMatchObject({ code: 0, stdout: 'audit chain intact: 4 rows (seq 4–7), 1 seals verified\n' });

    // Another master key: the seal cannot be opened — reported as a forged seal, exit 1.
    const wrongKey = await runCli(['audit', 'verify'], { ...env, CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64') });
    expect(wrongKey).toMatchObject({ code: 1, stdout: 'audit chain BROKEN: seal at seq 6: does not verify under the KMS (forged or edited)\n' });

    await ctx.store.dataSource.query(`UPDATE audit_events SET request_id = 'forged' WHERE seq = 2`);
    const broken = await runCli(['audit', 'verify'], env);
    expect(broken).toMatchObject({ code: 1, stdout: 'audit chain BROKEN: seq 2: hash mismatch (row modified)\n' });
    const prune = await runCli(['audit', 'prune', '--before', new Date(Date.now() - 1000).toISOString()], env);
    expect(prune).toMatchObject({ code: 1, stdout: 'not pruned, the chain is broken: seq 2: hash mismatch (row modified)\n' });
    const sealBroken = await runCli(['audit', 'seal'], env);
    // Only the rows since the last seal are checked before sealing (the edit at seq 2 stays caught by verify).
    expect(sealBroken.code).toBe(0);
    expect(sealBroken.stdout).toMatch(/^sealed the audit chain at seq 7 /);

    for (const args of [['audit', 'verify', '--since', 'yesterday'], ['audit', 'prune'], ['audit', 'prune', '--before', '2999-01-01']]) {
      const bad = await runCli(args, env);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/--since|--before/);
      expect(bad.stderr).not.toMatch(/\bat .*\.(ts|js):\d+/);
    }
  });

  test('the database unreachable: exit 3 with a message, no stack', async () => {
    const down = kind === 'sqlite' ? { CS_DATABASE_URL: 'sqlite:/etc/passwd/cannot-be-a-directory.db' } : { CS_DATABASE_URL: ctx.db.url.replace(/:(5432|3306)\//, ':1/') };
    const r = await runCli(['audit', 'verify'], { ...env, ...down });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^crypto-server: /);
    expect(r.stderr).not.toMatch(/\bat .*\.(ts|js):\d+/);
  });
});
