import { randomBytes, randomUUID, createHash } from 'node:crypto';
import { createTestContext, type TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import { rewrapEnvelopes } from '../../server/keks/rewrap';
import { envelopeStatus } from '../../server/keks/status';
import { storeSeal } from '../../server/audit/seal';
import { sealAuthentic } from '../../server/audit/seal-check';
import { KeyConnectorService } from '../../key-connector/service';
import { AuditSealEntity } from '../../entities';
import { envelopeCensus } from './support';

/**
 * The envelope tables that the transfer test does not fill: Key Connector user keys and the audit
 * chain's KMS seals (which carry no KEK column: they are selected by the envelope's own prefix).
 * After a rewrap each still opens for its own binding, and `--from` limits the move to one KEK.
 */
const FROM = 'local://default';
const OTHER = 'local://other';
const TO = 'local://next';

describe.each(testDatabaseNames())('keks rewrap of Key Connector keys and audit seals on %s', (db) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(db, { CS_KEK_URI: FROM, CS_PREVIOUS_KEK_URIS: `${TO},${OTHER}`, CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64') });
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  test('moves what --from names only; each envelope opens afterwards for its own binding and no other', async () => {
    const kc = new KeyConnectorService(ctx.store, ctx.kms, FROM);
    const subs = [randomUUID(), randomUUID()];
    const keys = subs.map(() => randomBytes(32));
    for (const [i, sub] of subs.entries()) await kc.create(sub, Buffer.from(keys[i]), { actor: 'test' });
    const hashes = [1, 2, 3].map((n) => createHash('sha256').update(`row ${n}`).digest('hex'));
    await storeSeal(ctx.store, ctx.kms, FROM, 'seal', 1n, hashes[0]);
    await storeSeal(ctx.store, ctx.kms, FROM, 'checkpoint', 2n, hashes[1]);
    await storeSeal(ctx.store, ctx.kms, OTHER, 'seal', 3n, hashes[2]);

    const dry = await rewrapEnvelopes(ctx.store, ctx.kms, { to: TO, from: FROM, dryRun: true, configuredKeks: [FROM, TO, OTHER] });
    expect(dry.tables.filter((t) => t.pending > 0).map((t) => [t.table, t.pending])).toEqual([['audit_seals', 2], ['key_connector_user_keys', 2]]);

    const s = await rewrapEnvelopes(ctx.store, ctx.kms, { to: TO, from: FROM, configuredKeks: [FROM, TO, OTHER] });
    expect(s.tables.find((t) => t.table === 'audit_seals')).toMatchObject({ moved: 2, failed: [] });
    expect(s.tables.find((t) => t.table === 'key_connector_user_keys')).toMatchObject({ moved: 2, failed: [] });
    const census = await envelopeCensus(ctx.store);
    expect(census.byKek).toEqual({ [TO]: 4, [OTHER]: 1 });
    expect(census.mismatched).toBe(0);

    for (const [i, sub] of subs.entries()) {
      const k = await kc.get(sub, { actor: 'test' });
      expect(k.equals(keys[i])).toBe(true);
    }
    const seals = await ctx.store.repos.manager.find(AuditSealEntity, { order: { id: 'ASC' } });
    for (const seal of seals) expect(await sealAuthentic(ctx.kms, { ...seal, seq: BigInt(seal.seq) } as never)).toBe(true);
    // Relabelled (another seq) it does not open: the binding moved with the envelope, unchanged.
    expect(await sealAuthentic(ctx.kms, { ...seals[0], seq: 9n } as never)).toBe(false);

    const status = await envelopeStatus(ctx.store);
    expect(status.filter((l) => l.table === 'audit_seals').map((l) => [l.kek, l.count])).toEqual([[OTHER, 1], [TO, 2]].sort((a, b) => String(a[0]).localeCompare(String(b[0]))));
  });
});
