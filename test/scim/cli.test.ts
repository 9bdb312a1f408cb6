/** `crypto-server token ...` and `crypto-server outbox ...` against a real database and the real app. */
import request from 'supertest';
import { tokenCommand } from '../../server/cli/token';
import { outboxCommand } from '../../server/cli/outbox';
import { buildProgram } from '../../server/cli/main';
import { newWebhookSecret } from '../../scim/outbox/signature';
import { createTestContext, type TestContext } from '../support/context';
import { newUser } from './support';

describe('token and outbox CLI', () => {
  let ctx: TestContext;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    const secret = newWebhookSecret();
    ctx = await createTestContext('sqlite', { CS_WEBHOOK_URL: 'http://127.0.0.1:9/unreachable', CS_WEBHOOK_SECRET: secret });
    env = { CS_DATABASE_URL: ctx.db.url, CS_LOG_LEVEL: 'silent', CS_WEBHOOK_URL: 'http://127.0.0.1:9/unreachable', CS_WEBHOOK_SECRET: secret };
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  it('registers its commands', () => {
    const names = buildProgram().commands.map((c) => c.name());
    expect(names).toEqual(expect.arrayContaining(['token', 'outbox']));
  });

  it('create prints the token once; it works against /scim/v2; list never shows it; revoke ends it', async () => {
    const out: string[] = [];
    expect(await tokenCommand(env, (l) => out.push(l), { create: { name: 'Entra', scope: 'scim' } })).toBe(0);
    const token = out[0];
    expect(token).toMatch(/^cst_[0-9a-f]{24}\.[A-Za-z0-9_-]{43}$/);
    const res = await request(ctx.app).post('/scim/v2/Users').set('Authorization', `Bearer ${token}`).send(newUser('cli@example.com')).expect(201);
    const listed: string[] = [];
    await tokenCommand(env, (l) => listed.push(l), { list: true });
    expect(listed.join('\n')).toContain('Entra');
    expect(listed.join('\n')).not.toContain(token.split('.')[1]);
    expect(listed.join('\n')).toMatch(/active/);
    expect(await tokenCommand(env, () => undefined, { revoke: 'Entra' })).toBe(0);
    await request(ctx.app).get(`/scim/v2/Users/${res.body.id}`).set('Authorization', `Bearer ${token}`).expect(401);
    expect(await tokenCommand(env, () => undefined, { revoke: 'Entra' })).toBe(1);
    const days: string[] = [];
    expect(await tokenCommand(env, (l) => days.push(l), { create: { name: 'x', scope: 'scim', expiresDays: Number.NaN } })).toBe(2);
    expect(days.join('\n')).toMatch(/--expires-days/);
    const bad: string[] = [];
    await expect(tokenCommand(env, (l) => bad.push(l), { create: { name: 'x', scope: 'root' } })).rejects.toMatchObject({ status: 400 });
  });

  it('outbox status and list show pending deliveries', async () => {
    const out: string[] = [];
    const code = await outboxCommand(env, (l) => out.push(l), { status: true });
    expect(code).toBe(0);
    expect(out.join('\n')).toMatch(/pending: 1/);
    const list: string[] = [];
    await outboxCommand(env, (l) => list.push(l), { list: { limit: 10, pending: true } });
    expect(list.join('\n')).toMatch(/user\.created/);
  });
});
