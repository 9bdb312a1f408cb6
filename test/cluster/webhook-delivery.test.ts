import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { DATABASE_FACTORIES, testDatabaseNames } from '../support/databases';
import { SCIM_JSON } from '../bench/http/scim-requests';
import { ENTRA_DISABLE_USER, entraCreateUser } from '../scim/idp-bodies';
import { Conn, listening, scimToken, servingPid, startServe, type ClusterProcess } from './support';

/**
 * Webhook delivery from the outbox with two worker processes, each running its own deliverer on the
 * one database: every event reaches the receiver, once (a lease per event decides which worker
 * sends it), and a resource's events arrive in the order they happened.
 */
jest.setTimeout(180_000);

describe.each(testDatabaseNames())('webhook delivery from two worker processes (%s)', (name) => {
  let p: ClusterProcess | undefined;
  let receiver: Server | undefined;
  afterEach(async () => {
    await p?.close();
    await new Promise((r) => (receiver ? receiver.close(r) : r(undefined)));
  });

  it('24 users created and deactivated over both workers: 48 events, each delivered once, in order per user', async () => {
    const received: { id: string; type: string; resource: string }[] = [];
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { type: string; data: { id: string } };
        received.push({ id: String(req.headers['webhook-id']), type: body.type, resource: body.data.id });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver!.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hooks`;
    p = await startServe({
      workers: 2,
      db: await DATABASE_FACTORIES[name](),
      env: { CS_SCIM_RATE_LIMIT_PER_MINUTE: '0', CS_WEBHOOK_URL: url, CS_WEBHOOK_SECRET: `whsec_${randomBytes(24).toString('base64')}` },
    });
    if (!(await listening(p))) throw new Error(p.stderr());
    const auth = { authorization: `Bearer ${await scimToken(p)}` };

    const conns = await Promise.all(Array.from({ length: 24 }, () => Conn.open(p!.port)));
    expect(new Set(await Promise.all(conns.map((c) => servingPid(p!.port, c.localPort, p!.workerPids())))).size).toBe(2);
    const created = await Promise.all(conns.map((c, i) => c.request('POST', '/scim/v2/Users', { type: SCIM_JSON, text: JSON.stringify(entraCreateUser(`hook-${i}@example.com`)) }, auth)));
    expect(created.map((r) => r.status)).toEqual(conns.map(() => 201));
    const ids = created.map((r) => (JSON.parse(r.body) as { id: string }).id);
    // Microsoft Entra ID's deactivation, on fresh connections (each connection carried one request).
    const again = await Promise.all(ids.map(() => Conn.open(p!.port)));
    const disabled = await Promise.all(again.map((c, i) => c.request('PATCH', `/scim/v2/Users/${ids[i]}`, { type: SCIM_JSON, text: ENTRA_DISABLE_USER }, auth)));
    expect(disabled.map((r) => r.status)).toEqual(ids.map(() => 200));

    for (let i = 0; i < 300 && received.length < 48; i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1500)); // a second deliverer's late duplicate would land by now
    expect(received).toHaveLength(48);
    expect(new Set(received.map((e) => e.id)).size).toBe(48);
    for (const id of ids) expect(received.filter((e) => e.resource === id).map((e) => e.type)).toEqual(['user.created', 'user.updated']);
  });
});
