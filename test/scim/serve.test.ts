/** The whole path in a served process: token from the CLI, SCIM create over HTTP, webhook delivered by the background worker. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '../../server/cli/serve';
import { tokenCommand } from '../../server/cli/token';
import { newWebhookSecret, verify } from '../../scim/outbox/signature';
import { newUser } from './support';

describe('serve with SCIM and webhook delivery', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-scim-serve-'));
  let hook: Server;
  const received: { headers: Record<string, string | undefined>; body: string }[] = [];
  beforeAll(async () => {
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        received.push({ headers: req.headers as Record<string, string>, body });
        res.statusCode = 200;
        res.end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
  });
  afterAll(async () => {
    hook.closeAllConnections();
    await new Promise((r) => hook.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('provisions over HTTP and delivers the signed event', async () => {
    const secret = newWebhookSecret();
    const env = {
      CS_DATA_DIR: dir,
      CS_PORT: '0',
      CS_LOG_LEVEL: 'silent',
      CS_WEBHOOK_URL: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`,
      CS_WEBHOOK_SECRET: secret,
      CS_OUTBOX_POLL_MS: '50',
    };
    const running = await serve(env, () => undefined);
    try {
      const out: string[] = [];
      await tokenCommand(env, (l) => out.push(l), { create: { name: 'idp', scope: 'scim' } });
      const res = await fetch(`${running.url}/scim/v2/Users`, {
        method: 'POST',
        headers: { authorization: `Bearer ${out[0]}`, 'content-type': 'application/scim+json' },
        body: JSON.stringify(newUser('served@example.com')),
      });
      expect(res.status).toBe(201);
      const created = (await res.json()) as { id: string };
      for (let i = 0; i < 200 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
      expect(received).toHaveLength(1);
      expect(verify(secret, received[0].headers, received[0].body)).toBe(true);
      expect(JSON.parse(received[0].body)).toMatchObject({ type: 'user.created', data: { id: created.id, userName: 'served@example.com' } });
    } finally {
      await running.stop();
    }
  });
});
