import { randomBytes } from 'node:crypto';
import { runCli } from '../fault/cli-process';
import { createTestContext, type TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import { OutboxRepository } from '../../scim/repositories/outbox';
import { OutboxEntity } from '../../entities/scim';

/** `crypto-server outbox retry <seq>`: the command behind the console's "Retry now". */
jest.setTimeout(120_000);

describe.each(testDatabaseNames())('outbox retry CLI on %s', (kind) => {
  let ctx: TestContext;
  let env: Record<string, string>;
  beforeAll(async () => {
    const settings = { CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64') };
    ctx = await createTestContext(kind, settings);
    env = { ...settings, CS_DATABASE_URL: ctx.db.url, CS_LOG_LEVEL: 'silent' };
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  test('makes a failed pending event due now; an unknown or delivered one exits 1 and changes nothing', async () => {
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const [failed, delivered] = await ctx.store.transaction(async (t) => {
      const repo = new OutboxRepository(t.manager);
      await repo.enqueue({ resourceType: 'User', resourceId: 'u1', eventType: 'user.updated', data: {} });
      await repo.enqueue({ resourceType: 'User', resourceId: 'u2', eventType: 'user.updated', data: {} });
      const [b, a] = await repo.recent(2);
      await repo.markFailed(a.seq, 2, later, 'HTTP 503');
      await repo.markDelivered(b.seq, new Date().toISOString(), 1);
      return [a.seq, b.seq];
    });
    const before = Date.now();
    const ok = await runCli(['outbox', 'retry', String(failed)], env);
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.stdout).toContain(`event ${failed} is due now`);
    const row = await ctx.store.repos.manager.findOneByOrFail(OutboxEntity, { seq: failed });
    expect(Date.parse(row.next_attempt_at)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(row.next_attempt_at)).toBeLessThan(Date.parse(later));

    const deliveredBefore = await ctx.store.repos.manager.findOneByOrFail(OutboxEntity, { seq: delivered });
    for (const seq of [String(delivered), '999999']) {
      const r = await runCli(['outbox', 'retry', seq], env);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`no pending event ${seq}`);
    }
    expect(await ctx.store.repos.manager.findOneByOrFail(OutboxEntity, { seq: delivered })).toEqual(deliveredBefore);
    const bad = await runCli(['outbox', 'retry', 'x'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/must be a whole number/);
  });
});
