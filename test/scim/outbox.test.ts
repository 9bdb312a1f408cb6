/** Outbox: recorded in the change's transaction, delivered signed, in order per resource, retried, surviving restarts. */
import { ownWrites } from '../../server/repositories/runner';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OutboxEntity } from '../../entities';
import { OutboxDeliverer } from '../../scim/outbox/deliverer';
import { newWebhookSecret, verify } from '../../scim/outbox/signature';
import { OutboxRepository } from '../../scim/repositories/outbox';
import { scimContext, newUser, GROUP_SCHEMA, PATCH, type ScimTestContext } from './support';

interface Received {
  headers: Record<string, string | undefined>;
  body: string;
}

describe.each(['sqlite', 'postgres', 'mariadb'] as const)('SCIM outbox and webhook delivery on %s', (db) => {
  let ctx: ScimTestContext;
  let server: Server;
  let url: string;
  const secret = newWebhookSecret();
  const received: Received[] = [];
  /** Decides the receiver's status per request; default 204. */
  let respond: (body: Json) => number = () => 204;
  type Json = { type: string; data: { id: string } };

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const status = respond(JSON.parse(body) as Json);
        if (status < 300) received.push({ headers: req.headers as Record<string, string>, body });
        res.statusCode = status;
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    ctx = await scimContext(db, { CS_WEBHOOK_URL: url, CS_WEBHOOK_SECRET: secret });
  });
  afterAll(async () => {
    await ctx?.cleanup();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const deliverer = () =>
    new OutboxDeliverer({ url, secret, run: ownWrites(ctx.store, (m) => new OutboxRepository(m)), baseBackoffMs: 1, maxBackoffMs: 5, timeoutMs: 2000 });
  const outbox = () => new OutboxRepository(ctx.store.dataSource.manager);

  it('records one event per change in the same transaction, and nothing for a failed change', async () => {
    const before = await ctx.store.dataSource.manager.count(OutboxEntity);
    const u = (await ctx.post('/Users', newUser('out1@example.com')).expect(201)).body;
    await ctx.patch(`/Users/${u.id}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: 'displayName', value: 'Out One' }] }).expect(200);
    await ctx.post('/Users', newUser('out1@example.com')).expect(409);
    await ctx.patch(`/Users/${u.id}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: 'nope', value: 1 }] }).expect(400);
    const rows = await ctx.store.dataSource.manager.find(OutboxEntity, { where: { resource_id: u.id }, order: { seq: 'ASC' } });
    expect(rows.map((r) => r.event_type)).toEqual(['user.created', 'user.updated']);
    expect(await ctx.store.dataSource.manager.count(OutboxEntity)).toBe(before + 2);
    const payload = JSON.parse(rows[0].payload);
    expect(payload.data['urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:UserKeys'].wrappedPasswordKey).toEqual(expect.any(String));
  });

  it('delivers signed (Standard Webhooks), at least once, and reports state', async () => {
    const n = await deliverer().runOnce();
    expect(n).toBe(2);
    expect(received).toHaveLength(2);
    for (const r of received) {
      expect(verify(secret, r.headers, r.body)).toBe(true);
      expect(r.headers['webhook-id']).toMatch(/^msg_/);
    }
    expect(received.map((r) => JSON.parse(r.body).type)).toEqual(['user.created', 'user.updated']);
    expect(await outbox().stats()).toMatchObject({ pending: 0, delivered: 2 });
  });

  it('keeps order per resource through failures, retries with back-off, and survives a restart', async () => {
    received.length = 0;
    const a = (await ctx.post('/Users', newUser('order-a@example.com')).expect(201)).body;
    const b = (await ctx.post('/Users', newUser('order-b@example.com')).expect(201)).body;
    await ctx.patch(`/Users/${a.id}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: 'displayName', value: 'A2' }] }).expect(200);
    await ctx.del(`/Users/${a.id}`).expect(204);
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Outbox G', members: [{ value: b.id }] }).expect(201)).body;

    // The cloud service fails everything about user A for now.
    respond = (p) => (p.data.id === a.id ? 503 : 204);
    const first = deliverer();
    await first.runOnce();
    expect(received.map((r) => JSON.parse(r.body).data.id)).toEqual([b.id, g.id]);
    const stats = await outbox().stats();
    expect(stats).toMatchObject({ pending: 3, lastError: 'HTTP 503' });
    const headA = (await ctx.store.dataSource.manager.find(OutboxEntity, { where: { resource_id: a.id }, order: { seq: 'ASC' } }))[0];
    expect(headA.attempts).toBe(1);
    expect(headA.next_attempt_at > headA.created_at).toBe(true);

    // "Restart": a new deliverer, state only from the database; the service is back.
    respond = () => 204;
    await new Promise((r) => setTimeout(r, 20));
    const second = deliverer();
    await second.runOnce();
    const aEvents = received.map((r) => JSON.parse(r.body)).filter((p) => p.data.id === a.id);
    expect(aEvents.map((p) => p.type)).toEqual(['user.created', 'user.updated', 'user.deleted']);
    expect(await outbox().stats()).toMatchObject({ pending: 0 });
  });

  it('a failed request is recorded by error name and code only, never the error text', async () => {
    await ctx.post('/Users', newUser('out-err@example.com')).expect(201);
    const failing = new OutboxDeliverer({
      url,
      secret,
      run: ownWrites(ctx.store, (m) => new OutboxRepository(m)),
      baseBackoffMs: 1,
      maxBackoffMs: 5,
      fetch: async () => {
        throw Object.assign(new TypeError('Request cannot be constructed from a URL that includes credentials: https://u:s3cret@x'), { cause: { code: 'ERR_X' } });
      },
    });
    await failing.runOnce();
    const rows = await ctx.store.dataSource.manager.find(OutboxEntity, { where: { status: 'pending' } });
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) {
      expect(r.last_error).toBe('request failed: TypeError ERR_X');
    }
    await deliverer().runOnce();
  });

  it('a background loop delivers new events and stops cleanly', async () => {
    received.length = 0;
    const d = deliverer();
    d.start(20);
    await ctx.post('/Users', newUser('loop@example.com')).expect(201);
    for (let i = 0; i < 100 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await d.stop();
    expect(received.map((r) => JSON.parse(r.body).type)).toEqual(['user.created']);
  });
});
