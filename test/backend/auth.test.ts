import request from 'supertest';
import { backendContext, type BackendTestContext } from './support';
import { testDatabaseNames } from '../support/databases';

/** Scope separation, address allow-lists and the audit trail of the backend API (issue 11). */
describe.each(testDatabaseNames())('backend API authentication (%s)', (kind) => {
  let ctx: BackendTestContext;
  beforeAll(async () => {
    ctx = await backendContext(kind);
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  const lookup = (token: string | undefined) => {
    const t = request(ctx.app).post('/backend/v1/public-keys/lookup').send({ ids: ['x'] });
    return token === undefined ? t : t.set('Authorization', `Bearer ${token}`);
  };

  test('a backend token calls the backend API; no token, a bad token or a revoked one get 401 problem+json', async () => {
    await lookup(ctx.backendToken).expect(200);
    for (const t of [undefined, 'cst_000000000000000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'nonsense']) {
      const res = await lookup(t).expect(401);
      expect(res.type).toBe('application/problem+json');
      expect(res.body.code).toBe('unauthorized');
    }
    const { token, info } = await ctx.tokens.create({ name: 'short-lived', scope: 'backend' });
    await lookup(token).expect(200);
    await ctx.tokens.revoke(info.id);
    await lookup(token).expect(401);
  });

  test('a SCIM token cannot call the backend API, and a backend token cannot call SCIM', async () => {
    const res = await lookup(ctx.token).expect(401);
    expect(res.body.code).toBe('unauthorized');
    const scim = await request(ctx.app).get('/scim/v2/Users').set('Authorization', `Bearer ${ctx.backendToken}`).expect(401);
    expect(scim.body.schemas).toEqual(['urn:ietf:params:scim:api:messages:2.0:Error']);
    await ctx.get('/Users').expect(200);
  });

  test('a token with an address allow-list is accepted only from those addresses', async () => {
    // supertest connects from the loopback address (IPv4, or IPv4-mapped IPv6).
    const { token: here } = await ctx.tokens.create({ name: 'from loopback', scope: 'backend', allowedAddresses: '127.0.0.0/8, ::1' });
    await lookup(here).expect(200);
    const { token: elsewhere } = await ctx.tokens.create({ name: 'from the office', scope: 'backend', allowedAddresses: '192.0.2.0/24,2001:db8::/32' });
    const res = await lookup(elsewhere).expect(403);
    expect(res.body.code).toBe('forbidden');
    expect(JSON.stringify(res.body)).not.toMatch(/192\.0\.2|127\.0\.0/);
    await expect(ctx.tokens.create({ name: 'bad', scope: 'backend', allowedAddresses: '10.0.0.0/33' })).rejects.toThrow(/not an IP address or CIDR range/);
    await expect(ctx.tokens.create({ name: 'bad', scope: 'backend', allowedAddresses: 'example.com' })).rejects.toThrow(/not an IP address/);
  });

  test('every call is audited under the token name, failures included', async () => {
    await lookup(ctx.backendToken).expect(200);
    await request(ctx.app).post('/backend/v1/groups').set('Authorization', `Bearer ${ctx.backendToken}`).send({ name: '' }).expect(400);
    const events = await ctx.store.repos.audit.recent(20);
    const ok = events.find((e) => e.action === 'backend.keys.lookup');
    expect(ok).toMatchObject({ actor: 'backend:cloud backend', outcome: 'success' });
    const failed = events.find((e) => e.action === 'backend.post' && e.outcome === 'failure');
    expect(failed).toMatchObject({ actor: 'backend:cloud backend' });
    expect(JSON.parse(failed!.detail!)).toMatchObject({ status: 400, code: 'invalid_input' });
  });
});
