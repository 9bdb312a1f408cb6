import { createTestContext, type TestContext } from '../support/context';
import { ROWS_PER_TURN, verifyAuditChain } from '../../server/audit/verify';
import { sealAuditHead } from '../../server/audit/seal';
import { auditRow } from '../../server/repositories/audit';

/**
 * A chain walk gives the event loop back every ROWS_PER_TURN rows. On SQLite every read is
 * synchronous: without the turns, the serving process's periodic seal verified every row since the
 * last seal in one go and no request, timer or socket was served meanwhile.
 */
describe('chain walk turns (sqlite)', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
    const rows = 3 * ROWS_PER_TURN;
    for (let i = 0; i < rows; i += 50) {
      await ctx.store.hot.insertAudit(Array.from({ length: 50 }, (_, j) => auditRow({ actor: 'test', action: 'turns.row', outcome: 'success', requestId: `t-${i + j}` })));
    }
  });
  afterAll(async () => ctx?.cleanup());

  /** Runs `work`, counting the event-loop turns (setImmediate callbacks) that ran before it settled. */
  const turnsDuring = async <T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> => {
    let turns = 0;
    let settled = false;
    const tick = () => {
      if (settled) return;
      turns++;
      setImmediate(tick);
    };
    setImmediate(tick);
    try {
      return { result: await work(), turns };
    } finally {
      settled = true;
    }
  };

  test('verifying 300 rows lets the event loop turn at least every 100 rows', async () => {
    const { result, turns } = await turnsDuring(() => verifyAuditChain(ctx.store.dataSource, ctx.kms));
    expect(result).toMatchObject({ ok: true });
    expect(result.rows).toBeGreaterThanOrEqual(3 * ROWS_PER_TURN);
    expect(turns).toBeGreaterThanOrEqual(Math.floor(result.rows / ROWS_PER_TURN));
  });

  test('the seal verifies with the same turns and still seals', async () => {
    const { result, turns } = await turnsDuring(() => sealAuditHead(ctx.store, ctx.kms, ctx.config.kms.kekUri));
    expect(result.sealed).toBe(true);
    expect(turns).toBeGreaterThanOrEqual(3);
  });
});
