import { randomBytes } from 'node:crypto';
import { createTestContext } from '../support/context';
import type { DatabaseName } from '../support/databases';
import { rewrapEnvelopes } from '../../server/keks/rewrap';
import { seedPasswordKeys } from '../keks/support';

/**
 * `keks rewrap` throughput, local KEK → another local KEK (unwrap + wrap, compare-and-set per row,
 * one transaction and one audit row per batch): envelopes re-wrapped per second, per database.
 */
export interface RewrapFigure {
  database: DatabaseName;
  envelopes: number;
  seconds: number;
  perSecond: number;
}

export async function benchRewrap(opts: { envelopes?: number; databases?: DatabaseName[]; batch?: number } = {}): Promise<RewrapFigure[]> {
  const n = opts.envelopes ?? 5000;
  const out: RewrapFigure[] = [];
  for (const database of opts.databases ?? ['sqlite', 'postgres']) {
    const to = 'local://next';
    const ctx = await createTestContext(database, { CS_KEK_URI: 'local://default', CS_PREVIOUS_KEK_URIS: to, CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64') });
    try {
      const u = await ctx.keys.provisionUser({ userName: 'bench@example.com' }, { actor: 'bench' });
      await seedPasswordKeys(ctx.store, ctx.kms, 'local://default', n - 1, { publicJwk: JSON.stringify(u.keys.publicJwk), privateJwe: u.keys.privateJwe });
      const start = process.hrtime.bigint();
      const s = await rewrapEnvelopes(ctx.store, ctx.kms, { to, batch: opts.batch, configuredKeks: ['local://default', to] });
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const moved = s.tables.reduce((m, t) => m + t.moved, 0);
      out.push({ database, envelopes: moved, seconds, perSecond: moved / seconds });
    } finally {
      await ctx.cleanup();
    }
  }
  return out;
}

if (require.main === module) {
  benchRewrap({ envelopes: Number(process.argv[2] ?? 5000) }).then(
    (r) => console.log(r),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
