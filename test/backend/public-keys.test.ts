import { PATCH } from '../scim/support';
import { testDatabaseNames } from '../support/databases';
import { backendContext, type BackendTestContext } from './support';

/** Public-key directory of the backend API (issue 11): only active users, only public keys, batched up to 100. */
describe.each(testDatabaseNames())('backend API public-key lookup (%s)', (kind) => {
  let ctx: BackendTestContext;
  const u: Record<string, string> = {};
  beforeAll(async () => {
    ctx = await backendContext(kind);
    u.ann = await ctx.user('Ann.Lee@Example.com');
    u.bob = await ctx.user('bob', { emails: [{ value: 'Bob.Smith@Example.org', type: 'work', primary: true }] });
    u.off = await ctx.user('off@example.com');
    u.gone = await ctx.user('gone@example.com');
    await ctx.patch(`/Users/${u.off}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: 'active', value: false }] }).expect(200);
    await ctx.del(`/Users/${u.gone}`).expect(204);
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  const lookup = (body: unknown) => ctx.backend.post('/public-keys/lookup', body);

  test('by id, by userName and by email, case-insensitive, in one call; the public JWK only', async () => {
    const res = await lookup({ ids: [u.ann], userNames: ['BOB'], emails: ['ann.lee@example.COM', 'bob.smith@example.org'] }).expect(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body.keys.map((k: { userId: string }) => k.userId).sort()).toEqual([u.ann, u.bob].sort());
    const bob = res.body.keys.find((k: { userId: string }) => k.userId === u.bob);
    expect(bob).toMatchObject({ userName: 'bob', email: 'Bob.Smith@Example.org', keyAlgorithm: 'ec-p256' });
    expect(bob.publicKeyJwk).toMatchObject({ kty: 'EC', use: 'enc' });
    expect(bob.publicKeyJwk.d).toBeUndefined();
    expect(Object.keys(bob).sort()).toEqual(['email', 'keyAlgorithm', 'publicKeyJwk', 'userId', 'userName']);
    expect(JSON.stringify(res.body)).not.toMatch(/privateJwe|wrapped|"d":/);
    expect(res.body.notFound).toEqual({ ids: [], userNames: [], emails: [] });
  });

  test('deactivated and deleted users are not found; unknown names are reported back', async () => {
    const res = await lookup({ ids: [u.off, u.gone, 'nobody'], userNames: ['off@example.com', 'gone@example.com'], emails: ['nobody@example.com'] }).expect(200);
    expect(res.body.keys).toEqual([]);
    expect(res.body.notFound).toEqual({ ids: [u.off, u.gone, 'nobody'], userNames: ['off@example.com', 'gone@example.com'], emails: ['nobody@example.com'] });
  });

  test('up to 100 lookups per call; more, or a malformed body, is a 400 problem', async () => {
    const ids = Array.from({ length: 99 }, (_, i) => `id-${i}`);
    const ok = await lookup({ ids: [...ids, u.ann] }).expect(200);
    expect(ok.body.keys).toHaveLength(1);
    expect(ok.body.notFound.ids).toHaveLength(99);
    const over = await lookup({ ids, userNames: ['a', 'b'] }).expect(400);
    expect(over.type).toBe('application/problem+json');
    expect(over.body.detail).toMatch(/at most 100/);
    await lookup({ ids: 'x' }).expect(400);
    await lookup({ names: ['x'] }).expect(400);
    await lookup({ ids: ['x'.repeat(37)] }).expect(400);
  });
});

/** The email lookup is served by an index where the engine has expression indexes. */
describe.each(testDatabaseNames(['sqlite', 'postgres']))('backend API email lookup index (%s)', (kind) => {
  let ctx: BackendTestContext;
  beforeAll(async () => {
    ctx = await backendContext(kind);
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  test('LOWER(email) IN (…) uses ix_users_email_lower', async () => {
    const ds = ctx.store.dataSource;
    const sql = 'SELECT id FROM users WHERE LOWER(email) IN (' + (kind === 'postgres' ? '$1, $2' : '?, ?') + ')';
    const params = ['a@example.com', 'b@example.com'];
    if (kind === 'postgres') {
      // A tiny table is cheaper to scan: take that option away so the plan shows whether the index can serve.
      const qr = ds.createQueryRunner();
      try {
        await qr.query('SET enable_seqscan = off');
        const plan = JSON.stringify(await qr.query(`EXPLAIN ${sql}`, params));
        expect(plan).toContain('ix_users_email_lower');
      } finally {
        await qr.query('RESET enable_seqscan');
        await qr.release();
      }
    } else {
      const plan = JSON.stringify(await ds.query(`EXPLAIN QUERY PLAN ${sql}`, params));
      expect(plan).toContain('ix_users_email_lower');
    }
  });
});
