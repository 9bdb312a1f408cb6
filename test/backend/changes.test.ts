import pino from 'pino';
import request from 'supertest';
import { OutboxEntity } from '../../entities/scim';
import { boot } from '../../server/boot';
import { createApp } from '../../server/http/app';
import { ChangeFeed, GAP_GRACE_MS } from '../../backend/changes';
import { ChangesRepository } from '../../backend/repositories/changes';
import { OutboxRepository } from '../../scim/repositories/outbox';
import { newWebhookSecret } from '../../scim/outbox/signature';
import { GROUP_SCHEMA, PATCH } from '../scim/support';
import { testDatabaseNames } from '../support/databases';
import { backendContext, type BackendTestContext } from './support';

type Change = { id: string; cursor: string; type: string; resourceType: string; resourceId: string; data: Record<string, unknown> };

/** GET /backend/v1/changes (issue 11): the webhook's events from the same outbox, in order, at least once, across a restart. */
describe.each(testDatabaseNames())('backend API change feed (%s)', (kind) => {
  let ctx: BackendTestContext;
  beforeAll(async () => {
    ctx = await backendContext(kind, { CS_BACKEND_CHANGE_FEED: 'true' });
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  const all = async (app = ctx.app, after = '0', limit = 2): Promise<{ changes: Change[]; next: string }> => {
    const changes: Change[] = [];
    let cursor = after;
    for (let i = 0; i < 100; i++) {
      const res = await request(app).get(`/backend/v1/changes?after=${cursor}&limit=${limit}`).set('Authorization', `Bearer ${ctx.backendToken}`).expect(200);
      changes.push(...res.body.changes);
      cursor = res.body.next;
      if (!res.body.hasMore) break;
    }
    return { changes, next: cursor };
  };

  test('SCIM and backend changes in order, paged by cursor; an old cursor reads them again; the feed survives a restart', async () => {
    const ann = await ctx.user('feed-ann@example.com');
    const bob = await ctx.user('feed-bob@example.com');
    const scimGroup = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Feed IdP', members: [{ value: ann }, { value: bob }] }).expect(201)).body;
    const app = (await ctx.backend.post('/groups', { name: 'Feed App', members: [{ id: ann }, { id: bob }] }).expect(201)).body;
    await ctx.backend.patch(`/groups/${app.id}`, { remove: [{ id: bob }] }).expect(200);
    await ctx.patch(`/Users/${bob}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: 'active', value: false }] }).expect(200);

    const first = await all();
    expect(first.changes.map((c) => `${c.type} ${c.resourceId}`)).toEqual([
      `user.created ${ann}`,
      `user.created ${bob}`,
      `group.created ${scimGroup.id}`,
      `group.created ${app.id}`,
      `group.updated ${app.id}`,
      `group.key.rotated ${app.id}`,
      `user.updated ${bob}`,
    ]);
    const cursors = first.changes.map((c) => Number(c.cursor));
    expect([...cursors].sort((a, b) => a - b)).toEqual(cursors);
    expect(first.changes[5].data).toMatchObject({ id: app.id, keyVersion: 2 });
    // The same rows the webhook reads: ids are the outbox's event ids.
    const outbox = await ctx.store.dataSource.manager.find(OutboxEntity, { order: { seq: 'ASC' } });
    expect(first.changes.map((c) => c.id)).toEqual(outbox.map((o) => o.event_id));
    // No webhook: recorded as delivered, so outbox housekeeping removes them after 30 days.
    expect(outbox.every((o) => o.status === 'delivered')).toBe(true);
    // Nothing new: the cursor stays.
    const none = await ctx.backend.get(`/changes?after=${first.next}`).expect(200);
    expect(none.body).toEqual({ changes: [], next: first.next, hasMore: false });
    // At least once: from an earlier cursor, the same events again.
    const replay = await all(ctx.app, first.changes[2].cursor, 100);
    expect(replay.changes.map((c) => c.id)).toEqual(first.changes.slice(3).map((c) => c.id));

    // A restart: a new process on the same database reads on from the stored cursor.
    await ctx.backend.del(`/groups/${app.id}`).expect(204);
    const deps = await boot(ctx.config, pino({ level: 'silent' }), { migrate: false });
    try {
      const after = await all(createApp(deps), first.next);
      expect(after.changes.map((c) => `${c.type} ${c.resourceId}`)).toEqual([`group.deleted ${app.id}`]);
    } finally {
      await deps.close();
    }
  });

  test('bad cursors and limits are 400 problems; the feed needs a backend token', async () => {
    for (const q of ['after=-1', 'after=abc', 'limit=0', 'limit=1001', 'limit=x', 'since=1']) {
      const res = await ctx.backend.get(`/changes?${q}`).expect(400);
      expect(res.type).toBe('application/problem+json');
    }
    await request(ctx.app).get('/backend/v1/changes').set('Authorization', `Bearer ${ctx.token}`).expect(401);
  });

  test('a gap in the sequence holds the page while the event after it is recent; an old gap is passed', async () => {
    const feed = new ChangeFeed((fn) => fn(new ChangesRepository(ctx.store.dataSource.manager)));
    const start = Number((await feed.page(0, 1000)).next);
    const now = new Date();
    await ctx.store.transaction(async (tx) => {
      const o = new OutboxRepository(tx.manager);
      await o.enqueue({ resourceType: 'User', resourceId: 'gap-a', eventType: 'user.updated', data: {} }, now.toISOString());
    });
    // A write that rolls back leaves a hole in the sequence.
    await ctx.store.transaction(async (tx) => {
      await new OutboxRepository(tx.manager).enqueue({ resourceType: 'User', resourceId: 'gap-rolled-back', eventType: 'user.updated', data: {} });
      throw new Error('roll back');
    }).catch(() => undefined);
    if (kind === 'sqlite') return; // SQLite reuses the rolled-back rowid: no gap to test
    await ctx.store.transaction((tx) => new OutboxRepository(tx.manager).enqueue({ resourceType: 'User', resourceId: 'gap-b', eventType: 'user.updated', data: {} }, now.toISOString()));
    const held = await feed.page(start, 100, now);
    expect(held.changes.map((c) => c.resourceId)).toEqual(['gap-a']);
    const later = await feed.page(Number(held.next), 100, new Date(now.getTime() + GAP_GRACE_MS + 1000));
    expect(later.changes.map((c) => c.resourceId)).toEqual(['gap-b']);
  });
});

describe('backend API change feed off', () => {
  test('without CS_BACKEND_CHANGE_FEED or a webhook: 404 naming the setting, and no outbox rows are written', async () => {
    const ctx = await backendContext('sqlite');
    try {
      await ctx.user('no-feed@example.com');
      const res = await ctx.backend.get('/changes').expect(404);
      expect(res.body.detail).toMatch(/CS_BACKEND_CHANGE_FEED/);
      expect(await ctx.store.dataSource.manager.count(OutboxEntity)).toBe(0);
    } finally {
      await ctx.cleanup();
    }
  });

  test('with a webhook, the feed reads the pending events the webhook has yet to deliver', async () => {
    const ctx = await backendContext('sqlite', { CS_WEBHOOK_URL: 'http://127.0.0.1:9/unreachable', CS_WEBHOOK_SECRET: newWebhookSecret() });
    try {
      const id = await ctx.user('webhook-feed@example.com');
      const res = await ctx.backend.get('/changes').expect(200);
      expect(res.body.changes.map((c: Change) => `${c.type} ${c.resourceId}`)).toEqual([`user.created ${id}`]);
      const [row] = await ctx.store.dataSource.manager.find(OutboxEntity);
      expect(row).toMatchObject({ status: 'pending', event_id: res.body.changes[0].id });
    } finally {
      await ctx.cleanup();
    }
  });
});
