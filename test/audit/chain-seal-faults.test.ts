import { randomBytes } from 'node:crypto';
import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { LocalAdapter } from '../../kms-adapters/local';
import { KmsRegistry } from '../../kms-adapters/registry';
import type { BindingContext, KmsAdapter, WrapResult } from '../../kms-adapters/types';
import { KmsUnavailableError } from '../../server/errors';
import { sealAuditHead, startAuditSealer } from '../../server/audit/seal';
import { pruneAudit } from '../../server/audit/prune';
import { verifyAuditChain } from '../../server/audit/verify';

/** A real local adapter whose wraps can be held (a hung KMS) or failed (an outage). */
class FaultyKms implements KmsAdapter {
  readonly scheme = 'local';
  private readonly inner = new LocalAdapter(randomBytes(32));
  hold: Promise<void> | undefined;
  fail = false;
  wraps = 0;
  async wrap(uri: string, pt: Uint8Array, ctx: BindingContext): Promise<WrapResult> {
    this.wraps++;
    if (this.hold) await this.hold;
    if (this.fail) throw new KmsUnavailableError('the KMS is unreachable (test)');
    return this.inner.wrap(uri, pt, ctx);
  }
  unwrap(uri: string, ct: Uint8Array, ctx: BindingContext): Promise<Buffer> {
    return this.inner.unwrap(uri, ct, ctx);
  }
  check(uri: string): Promise<void> {
    return this.inner.check(uri);
  }
  async close(): Promise<void> {}
}

/**
 * Sealing and pruning meet their faults: the KMS call runs with no transaction or SQLite writer
 * held (audit writes go on while it hangs), an outage stores nothing and deletes nothing, and the
 * periodic sealer reports the failure and seals at a later interval.
 */
describe.each(testDatabaseNames())('audit seals and prune under KMS faults (%s)', (kind) => {
  let ctx: TestContext;
  let adapter: FaultyKms;
  let kms: KmsRegistry;
  const KEK = 'local://default';
  beforeAll(async () => {
    ctx = await createTestContext(kind);
    // One key for the whole suite: the seals of one test must verify in the next.
    adapter = new FaultyKms();
    kms = new KmsRegistry(new Map([['local', adapter]]), [KEK]);
  });
  afterAll(async () => ctx?.cleanup());
  beforeEach(() => {
    adapter.hold = undefined;
    adapter.fail = false;
    adapter.wraps = 0;
  });

  const seals = async () => (await ctx.store.dataSource.query(`SELECT seq FROM audit_seals`)) as unknown[];
  const write = (n: number) => Promise.all(Array.from({ length: n }, (_, i) => ctx.store.auditCommitted({ actor: 'test', action: 'x', outcome: 'success', targetId: `t${i}` })));

  test('a hung KMS: audit writes of every kind commit meanwhile; the seal lands when the KMS answers', async () => {
    await write(5);
    let release!: () => void;
    adapter.hold = new Promise<void>((r) => (release = r));
    const sealing = sealAuditHead(ctx.store, kms, KEK);
    while (adapter.wraps === 0) await new Promise((r) => setTimeout(r, 5));
    await write(10);
    await ctx.store.audit({ actor: 'test', action: 'refused', outcome: 'refused' });
    await ctx.store.transaction((tx) => tx.audit.append({ actor: 'test', action: 'in-tx', outcome: 'success' }));
    expect(ctx.store.poolWatch.waiters).toBe(0);
    expect(await seals()).toHaveLength(0);
    release();
    const r = await sealing;
    expect(r.sealed).toBe(true);
    expect(await verifyAuditChain(ctx.store.dataSource, kms)).toMatchObject({ ok: true, seals: 1 });
  });

  test('a KMS outage: sealAuditHead fails, stores no seal; prune deletes nothing', async () => {
    await write(3);
    adapter.fail = true;
    const before = (await seals()).length;
    await expect(sealAuditHead(ctx.store, kms, KEK)).rejects.toBeInstanceOf(KmsUnavailableError);
    expect(await seals()).toHaveLength(before);
    const rows = ((await ctx.store.dataSource.query('SELECT COUNT(*) AS n FROM audit_events')) as { n: unknown }[])[0].n;
    await expect(pruneAudit(ctx.store, kms, KEK, new Date(Date.now() + 1000).toISOString())).rejects.toBeInstanceOf(KmsUnavailableError);
    expect(((await ctx.store.dataSource.query('SELECT COUNT(*) AS n FROM audit_events')) as { n: unknown }[])[0].n).toEqual(rows);
    expect(await ctx.store.dataSource.query(`SELECT seq FROM audit_seals WHERE kind = 'checkpoint'`)).toHaveLength(0);
  });

  test('the periodic sealer reports a failed interval, gives the lease back, and seals at a later one', async () => {
    await write(2);
    adapter.fail = true;
    const warnings: string[] = [];
    const leases: string[] = [];
    const sealer = startAuditSealer(ctx.store, kms, {
      intervalS: 1,
      kekUri: KEK,
      warn: (_f, m) => warnings.push(m),
      takeLease: async (holder) => (leases.push(`take ${holder}`), true),
      releaseLease: async (holder) => void leases.push(`release ${holder}`),
    });
    try {
      const before = (await seals()).length;
      for (let i = 0; i < 100 && warnings.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(warnings[0]).toBe('audit seal failed; the next interval tries again');
      expect(leases.slice(0, 2).map((l) => l.split(' ')[0])).toEqual(['take', 'release']);
      adapter.fail = false;
      await write(1);
      for (let i = 0; i < 100 && (await seals()).length === before; i++) await new Promise((r) => setTimeout(r, 50));
      expect((await seals()).length).toBe(before + 1);
    } finally {
      await sealer.stop();
    }
  });
});
