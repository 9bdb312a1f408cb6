import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { OutboxRepository } from '../../scim/repositories/outbox';

/**
 * OutboxRepository.enqueue (plain SQL since issue 10): every column is stored as before on each
 * database, pending or feed-only, and an event of a transaction that rolls back is not stored.
 */
describe.each(testDatabaseNames())('outbox enqueue (%s)', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  const COLUMNS = 'seq, event_id, resource_type, resource_id, event_type, payload, status, attempts, created_at, next_attempt_at, delivered_at, last_error';
  const rows = async () => ((await ctx.store.dataSource.query(`SELECT ${COLUMNS} FROM scim_outbox ORDER BY seq`)) as Record<string, unknown>[]).map((r) => ({ ...r, seq: Number(r.seq), attempts: Number(r.attempts) }));
  const AWKWARD = "o'brien \\ $1 ünï 𝄞 '); DELETE FROM scim_outbox; --";
  const data = { id: 'u-1', userName: AWKWARD, emails: [{ value: 'a@example.com', primary: true }] };

  test('pending and feed-only events are stored column for column, numbered in order', async () => {
    const now = ['2026-12-01T10:00:00.000Z', '2026-12-01T10:00:01.000Z'];
    const ids = await ctx.store.transaction(async (tx) => {
      const outbox = new OutboxRepository(tx.manager);
      return [
        await outbox.enqueue({ resourceType: 'User', resourceId: 'u-1', eventType: 'user.created', data }, now[0]),
        await outbox.enqueue({ resourceType: 'Group', resourceId: 'g-1', eventType: 'group.updated', data: { members: [] }, feedOnly: true }, now[1]),
      ];
    });
    expect(ids).toEqual([expect.stringMatching(/^msg_[0-9a-f-]{36}$/), expect.stringMatching(/^msg_[0-9a-f-]{36}$/)]);
    const stored = await rows();
    expect(stored[1]!.seq).toBeGreaterThan(stored[0]!.seq);
    expect(stored.map(({ seq: _, ...r }) => r)).toEqual([
      {
        event_id: ids[0], resource_type: 'User', resource_id: 'u-1', event_type: 'user.created', payload: JSON.stringify({ type: 'user.created', timestamp: now[0], data }),
        status: 'pending', attempts: 0, created_at: now[0], next_attempt_at: now[0], delivered_at: null, last_error: null,
      },
      {
        event_id: ids[1], resource_type: 'Group', resource_id: 'g-1', event_type: 'group.updated', payload: JSON.stringify({ type: 'group.updated', timestamp: now[1], data: { members: [] } }),
        status: 'delivered', attempts: 0, created_at: now[1], next_attempt_at: now[1], delivered_at: now[1], last_error: null,
      },
    ]);
    // Read back through the repository as delivery does.
    expect((await new OutboxRepository(ctx.store.dataSource.manager).due('2026-12-02T00:00:00.000Z', 10)).map((r) => r.event_id)).toEqual([ids[0]]);
  });

  test('an event of a transaction that rolls back is not stored', async () => {
    const before = await rows();
    await expect(
      ctx.store.transaction(async (tx) => {
        await new OutboxRepository(tx.manager).enqueue({ resourceType: 'User', resourceId: 'u-2', eventType: 'user.created', data });
        throw new Error('later step failed');
      }),
    ).rejects.toThrow('later step failed');
    expect(await rows()).toEqual(before);
  });
});
