/**
 * Audit search and stream on the three databases: each filter selects exactly its rows, keyset
 * pages walk newest → oldest without gaps or repeats (also while rows are appended), the stream
 * reads ascending in batches, and bad filters are refused with a message naming the field.
 */
import { loadConfig } from '../../server/config';
import { openStore } from '../../server/boot';
import type { Store } from '../../server/repositories/store';
import type { AuditInput } from '../../server/repositories/audit';
import { iterateAudit, parseAuditTime, searchAudit, streamAudit } from '../../server/audit/search';
import { ValidationError } from '../../server/errors';
import { AuditReading1764710000000 } from '../../entities/migrations/1764710000000-audit-reading';
import { DATABASE_FACTORIES, testDatabaseNames, type TestDatabase } from '../support/databases';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Three groups of events, each group committed at its own millisecond so time bounds split them. */
const GROUPS: AuditInput[][] = [
  [
    { actor: 'alice', action: 'password-key.unwrap', outcome: 'success', targetType: 'user', targetId: 'u-alice', requestId: 'r-1' },
    { actor: 'bob', action: 'password-key.unwrap', outcome: 'refused', targetType: 'user', targetId: 'u-alice', requestId: 'r-2' },
    { actor: 'scim', action: 'user.create', outcome: 'success', targetType: 'user', targetId: 'u-carol' },
  ],
  [
    { actor: 'alice', action: 'group.rotate', outcome: 'failure', targetType: 'group', targetId: 'g-1', detail: { code: 'kms_unavailable' } },
    { actor: 'scim', action: 'group.create', outcome: 'success', targetType: 'group', targetId: 'g-1', requestId: 'r-3' },
  ],
  [
    { actor: 'alice', action: 'password-key.unwrap', outcome: 'success', targetType: 'user', targetId: 'u-alice', requestId: 'r-4' },
    { actor: 'dave', action: 'signing-key.rotate', outcome: 'success', targetType: 'signing-key', targetId: 'k-1' },
  ],
];

describe.each(testDatabaseNames())('audit search on %s', (kind) => {
  let db: TestDatabase;
  let store: Store;
  const groupStart: string[] = [];

  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
    store = await openStore(loadConfig({ CS_DATABASE_URL: db.url, CS_LOG_LEVEL: 'silent' }));
    await store.migrate();
    for (const group of GROUPS) {
      await sleep(5);
      await store.transaction(async (t) => {
        for (const e of group) await t.audit.append(e);
      });
      const rows = (await searchAudit(store, {}, { limit: group.length })).rows;
      groupStart.push(rows[rows.length - 1].at);
    }
  });
  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });

  /** The (actor, action) pairs a search returns, oldest first for readability. */
  const found = async (filters: Parameters<typeof searchAudit>[1]) =>
    (await searchAudit(store, filters, { limit: 500 })).rows.map((r) => `${r.actor} ${r.action}`).reverse();

  it.each([
    [{}, ['alice password-key.unwrap', 'bob password-key.unwrap', 'scim user.create', 'alice group.rotate', 'scim group.create', 'alice password-key.unwrap', 'dave signing-key.rotate']],
    [{ actor: 'alice' }, ['alice password-key.unwrap', 'alice group.rotate', 'alice password-key.unwrap']],
    [{ action: 'password-key.unwrap' }, ['alice password-key.unwrap', 'bob password-key.unwrap', 'alice password-key.unwrap']],
    [{ outcome: 'refused' as const }, ['bob password-key.unwrap']],
    [{ outcome: 'failure' as const, actor: 'alice' }, ['alice group.rotate']],
    [{ targetType: 'group' }, ['alice group.rotate', 'scim group.create']],
    [{ targetType: 'user', targetId: 'u-alice', actor: 'bob' }, ['bob password-key.unwrap']],
    [{ targetId: 'k-1' }, ['dave signing-key.rotate']],
    [{ requestId: 'r-3' }, ['scim group.create']],
    [{ actor: 'nobody' }, []],
    [{ actor: 'ALICE' }, []],
  ])('filter %j', async (filters, expected) => {
    expect(await found(filters)).toEqual(expected);
  });

  it('since is inclusive and until exclusive, on the stored time', async () => {
    expect(await found({ since: groupStart[1], until: groupStart[2] })).toEqual(['alice group.rotate', 'scim group.create']);
    expect(await found({ since: groupStart[2] })).toEqual(['alice password-key.unwrap', 'dave signing-key.rotate']);
    expect(await found({ until: groupStart[1] })).toEqual(['alice password-key.unwrap', 'bob password-key.unwrap', 'scim user.create']);
    expect(await found({ since: new Date(Date.parse(groupStart[2]) + 60_000) })).toEqual([]);
    expect((await found({ since: '-1h' })).length).toBe(7);
  });

  it('pages newest first by id with a cursor, without gaps or repeats, while rows are appended', async () => {
    const seen: number[] = [];
    let page = await searchAudit(store, {}, { limit: 3 });
    seen.push(...page.rows.map((r) => Number(r.id)));
    // A new row after the first page must not shift later pages.
    await store.transaction((t) => t.audit.append({ actor: 'late', action: 'x', outcome: 'success' }));
    while (page.next !== null) {
      page = await searchAudit(store, {}, { before: page.next, limit: 3 });
      seen.push(...page.rows.map((r) => Number(r.id)));
    }
    expect(seen).toHaveLength(7);
    expect(seen).toEqual([...seen].sort((a, b) => b - a));
    expect(new Set(seen).size).toBe(7);
    const first = await searchAudit(store, {}, { limit: 1 });
    expect(first.rows[0].actor).toBe('late');
    expect(typeof first.rows[0].id).toBe('number');
  });

  it('a filtered page ends with next = null exactly when nothing older matches', async () => {
    const p1 = await searchAudit(store, { actor: 'alice' }, { limit: 2 });
    expect(p1.rows).toHaveLength(2);
    expect(p1.next).toBe(p1.rows[1].id);
    const p2 = await searchAudit(store, { actor: 'alice' }, { before: p1.next!, limit: 2 });
    expect(p2.rows.map((r) => r.action)).toEqual(['password-key.unwrap']);
    expect(p2.next).toBeNull();
    const exact = await searchAudit(store, { actor: 'alice' }, { limit: 3 });
    expect(exact.next).toBeNull();
  });

  it('streams ascending in batches of the given size, and resumes after an id', async () => {
    const batches: number[] = [];
    const ids: number[] = [];
    const n = await streamAudit(store, {}, (r) => void ids.push(Number(r.id)), { batchSize: 3, onBatch: (c) => batches.push(c) });
    expect(n).toBe(8);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(batches).toEqual([3, 6, 8]);
    const rest: string[] = [];
    for await (const r of iterateAudit(store, { actor: 'alice' }, { afterId: ids[0], batchSize: 2 })) rest.push(r.action);
    expect(rest).toEqual(['group.rotate', 'password-key.unwrap']);
  });

  it('its migration (indexes, forwarding cursors) reverts and applies again', async () => {
    // Run on its own: later migrations (other features) may sit on top of it.
    const runner = store.dataSource.createQueryRunner();
    const migration = new AuditReading1764710000000();
    try {
      await migration.down(runner);
      expect(await runner.hasTable('audit_forward_cursors')).toBe(false);
      expect((await runner.getTable('audit_events'))!.indices.map((i) => i.name)).not.toContain('ix_audit_events_actor_id');
      await migration.up(runner);
      const indexes = (await runner.getTable('audit_events'))!.indices.map((i) => i.name);
      expect(indexes).toEqual(expect.arrayContaining(['ix_audit_events_actor_id', 'ix_audit_events_action_id', 'ix_audit_events_request']));
      expect(await runner.hasTable('audit_forward_cursors')).toBe(true);
    } finally {
      await runner.release();
    }
  });

  it('refuses bad filters and pages with a message naming the field', async () => {
    const refused = async (f: unknown, p: unknown = {}) => {
      const err = await searchAudit(store, f as never, p as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      return (err as Error).message;
    };
    expect(await refused({ outcome: 'ok' })).toMatch(/outcome/);
    expect(await refused({ since: 'yesterday' })).toMatch(/since: must be an ISO 8601 time/);
    expect(await refused({ until: '2026-13-45T99:00:00Z' })).toMatch(/until/);
    expect(await refused({ since: '2026-12-02T00:00:00Z', until: '2026-12-01T00:00:00Z' })).toMatch(/since must be before until/);
    expect(await refused({ colour: 'red' })).toMatch(/unknown filter: colour/);
    expect(await refused({ actor: '' })).toMatch(/actor: must not be empty/);
    expect(await refused({ actor: 'x'.repeat(256) })).toMatch(/actor: must be at most 255/);
    expect(await refused({}, { limit: 501 })).toMatch(/limit: must be at most 500/);
    expect(await refused({}, { limit: 0 })).toMatch(/limit/);
    expect(await refused({}, { before: -1 })).toMatch(/before/);
    // A value that looks like SQL is a value, not SQL.
    expect(await found({ actor: "alice' OR '1'='1" })).toEqual([]);
  });
});

describe('parseAuditTime', () => {
  const now = new Date('2026-12-01T12:00:00.000Z');
  it.each([
    ['-1h', '2026-12-01T11:00:00.000Z'],
    ['7d', '2026-11-24T12:00:00.000Z'],
    ['30m', '2026-12-01T11:30:00.000Z'],
    ['-90s', '2026-12-01T11:58:30.000Z'],
    ['2w', '2026-11-17T12:00:00.000Z'],
    ['2026-11-30', '2026-11-30T00:00:00.000Z'],
    ['2026-11-30T10:00:00Z', '2026-11-30T10:00:00.000Z'],
    ['2026-11-30T10:00:00.5+02:00', '2026-11-30T08:00:00.500Z'],
  ])('%s', (input, expected) => expect(parseAuditTime(input, now)).toBe(expected));
  it.each(['yesterday', '1y', '-h', '2026-11-30T10:00:00', '2026-02-30T10:00:00Z', '', '1.5h'])('refuses %j', (input) => expect(parseAuditTime(input, now)).toBeUndefined());
});
