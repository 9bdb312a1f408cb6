/** `crypto-server token create --scope backend [--allow-from …]` against a real database and the real app. */
import request from 'supertest';
import { tokenCommand } from '../../server/cli/token';
import { createTestContext, type TestContext } from '../support/context';

describe('token CLI for the backend API', () => {
  let ctx: TestContext;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
    env = { CS_DATABASE_URL: ctx.db.url, CS_LOG_LEVEL: 'silent' };
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  const lookup = (token: string) => request(ctx.app).post('/backend/v1/public-keys/lookup').set('Authorization', `Bearer ${token}`).send({ ids: [] });

  it('creates a backend token that works on /backend/v1 only; --allow-from binds it to addresses and is listed', async () => {
    const out: string[] = [];
    expect(await tokenCommand(env, (l) => out.push(l), { create: { name: 'cloud', scope: 'backend' } })).toBe(0);
    await lookup(out[0]).expect(200);
    await request(ctx.app).get('/scim/v2/Users').set('Authorization', `Bearer ${out[0]}`).expect(401);
    expect(out.join('\n')).toMatch(/scope backend/);

    const bound: string[] = [];
    expect(await tokenCommand(env, (l) => bound.push(l), { create: { name: 'cloud-office', scope: 'backend', allowFrom: '192.0.2.0/24' } })).toBe(0);
    expect(bound[1]).toMatch(/only from 192\.0\.2\.0\/24/);
    await lookup(bound[0]).expect(403);
    const listed: string[] = [];
    await tokenCommand(env, (l) => listed.push(l), { list: true });
    expect(listed.find((l) => l.includes('cloud-office'))).toMatch(/backend\tactive.*only from 192\.0\.2\.0\/24/);
  });

  it('refuses an unknown scope and a malformed allow-list', async () => {
    await expect(tokenCommand(env, () => undefined, { create: { name: 'x', scope: 'admin' } })).rejects.toThrow(/known scopes: scim, backend/);
    await expect(tokenCommand(env, () => undefined, { create: { name: 'x', scope: 'backend', allowFrom: '10.0.0.1/40' } })).rejects.toThrow(/not an IP address or CIDR range/);
  });
});
