import { OutboxEntity } from '../../entities/scim';
import { newWebhookSecret } from '../../scim/outbox/signature';
import { testDatabaseNames } from '../support/databases';
import { GROUP_SCHEMA, PATCH, newUser, scimContext, type ScimTestContext } from './support';

/**
 * With a webhook, a group's event carries every member and their JWE: a 150-member group's event
 * is well over 64 KB (MariaDB's TEXT). Creating and changing such a group must still work.
 */
describe.each(testDatabaseNames())('big group webhook events (%s)', (kind) => {
  let ctx: ScimTestContext;
  beforeAll(async () => {
    ctx = await scimContext(kind, { CS_WEBHOOK_URL: 'http://127.0.0.1:9/unreachable', CS_WEBHOOK_SECRET: newWebhookSecret() });
  });
  afterAll(async () => ctx?.cleanup());

  test('a 150-member group is created and changed; its events are stored whole', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 151; i++) ids.push((await ctx.post('/Users', newUser(`big-event-${i}@example.com`)).expect(201)).body.id);
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Big event', members: ids.slice(0, 150).map((value) => ({ value })) }).expect(201)).body;
    await ctx.patch(`/Groups/${g.id}`, { schemas: [PATCH], Operations: [{ op: 'add', path: 'members', value: [{ value: ids[150] }] }] }).expect(204);
    const events = await ctx.store.dataSource.manager.find(OutboxEntity, { where: { resource_id: g.id }, order: { seq: 'ASC' } });
    expect(events.map((e) => e.event_type)).toEqual(['group.created', 'group.updated']);
    expect(events[1].payload.length).toBeGreaterThan(65_535);
    expect((JSON.parse(events[1].payload).data.members as unknown[]).length).toBe(151);
  });
});
