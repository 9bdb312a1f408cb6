import request from 'supertest';
import type { Express } from 'express';
import { createTestContext, type TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import type { AuthServices } from '../../server/auth';
import { mintSession, SESSION_COOKIE } from '../../admin/session';
import { ownWrites } from '../../server/repositories/runner';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { TokenService } from '../../scim/tokens';
import { refusalEvent, ROWS_PER_MINUTE, ScimRefusalAudit, scimRefusalAuditOf } from '../../scim/refusal-audit';
import { AuditEventEntity, type AuditEventRow } from '../../entities';
import { newUser } from '../scim/support';
import { consoleContext, CONSOLE_PUBLIC_URL } from './support';

/**
 * Refused /scim/v2 requests are audited (`scim.refused`) with who, what and why — never the body
 * or the bearer token — and a flood is bounded per (caller, status) and minute with every refusal
 * still counted; the console's Provisioning page lists them. On SQLite, PostgreSQL and MariaDB.
 */
jest.setTimeout(180_000);

const PUBLIC_URL = CONSOLE_PUBLIC_URL;
const SCIM = 'application/scim+json';

describe.each(testDatabaseNames())('SCIM refusal audit on %s', (kind) => {
  let ctx: TestContext;
  let auth: AuthServices;
  let app: Express;
  let token: string;
  let tokenId: string;
  let adminId: string;

  const refusals = async (): Promise<(AuditEventRow & { d: Record<string, unknown> })[]> =>
    (await ctx.store.repos.manager.find(AuditEventEntity, { where: { action: 'scim.refused' }, order: { id: 'ASC' } })).map((e) => ({ ...e, d: JSON.parse(e.detail ?? '{}') as Record<string, unknown> }));
  const allAuditText = async () => JSON.stringify(await ctx.store.repos.manager.find(AuditEventEntity));

  beforeAll(async () => {
    ({ ctx, auth, app } = await consoleContext(kind));
    const created = await new TokenService(ownWrites(ctx.store, (m) => new ApiTokenRepository(m))).create({ name: 'Entra ID', scope: 'scim' });
    token = created.token;
    tokenId = created.info.id;
    adminId = (await ctx.keys.provisionUser({ userName: 'root@example.com' }, { actor: 'test' })).id;
    await ctx.keys.provisionGroup({ displayName: 'Key Admins', memberIds: [adminId] }, { actor: 'test' });
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  test('a bad bearer token → 401, audited as anonymous with the client address; the token is not in the row', async () => {
    const bad = 'cst_0123456789abcdef01234567.NotTheSecretNotTheSecretNotTheSecretNotThe';
    const res = await request(app).get('/scim/v2/Users?filter=userName%20eq%20%22x%22').set('Authorization', `Bearer ${bad}`).expect(401);
    expect(res.body.status).toBe('401');
    const row = (await refusals()).at(-1)!;
    expect(row).toMatchObject({ actor: 'anonymous', outcome: 'refused', requestId: expect.any(String) });
    expect(row.d).toMatchObject({ status: 401, method: 'GET', path: '/scim/v2/Users', reason: 'the bearer token is invalid, revoked or expired' });
    expect(String(row.d.from)).toMatch(/127\.0\.0\.1/);
    expect(row.d.suppressed).toBeUndefined();
    expect(await allAuditText()).not.toContain('NotTheSecret');
    expect(await allAuditText()).not.toContain('0123456789abcdef01234567');
    // No Authorization header at all: the same, with its own reason.
    await request(app).get('/scim/v2/Groups').expect(401);
    expect((await refusals()).at(-1)!.d).toMatchObject({ status: 401, path: '/scim/v2/Groups', reason: 'a bearer token is required' });
  });

  test('a 409 uniqueness conflict is audited with the token id; the body (userName) is not in the row', async () => {
    const userName = 'conflicting.person@example.com';
    const post = () => request(app).post('/scim/v2/Users').set('Authorization', `Bearer ${token}`).set('Content-Type', SCIM).send(JSON.stringify(newUser(userName)));
    await post().expect(201);
    const res = await post().expect(409);
    expect(res.body.scimType).toBe('uniqueness');
    const row = (await refusals()).at(-1)!;
    expect(row).toMatchObject({ actor: `scim:${tokenId}`, targetType: 'token', targetId: tokenId, outcome: 'refused' });
    expect(row.d).toMatchObject({ status: 409, scimType: 'uniqueness', method: 'POST', path: '/scim/v2/Users' });
    expect(typeof row.d.reason).toBe('string');
    expect(row.d.from).toBeUndefined();
    expect(JSON.stringify(await refusals())).not.toContain('conflicting.person');
    expect(JSON.stringify(await refusals())).not.toContain(token.slice(29));
  });

  test('a body that is not JSON, and one over the size limit: 400/413 audited with a fixed reason, never the body', async () => {
    await request(app).post('/scim/v2/Users').set('Authorization', `Bearer ${token}`).set('Content-Type', SCIM).send('{"userName": "BODYMARKER-not-json').expect(400);
    expect((await refusals()).at(-1)!.d).toMatchObject({ status: 400, scimType: 'invalidSyntax', reason: 'the body is not valid JSON (or not JSON)' });
    const big = JSON.stringify(newUser('big@example.com', { displayName: `BODYMARKER${'x'.repeat(ctx.config.scim.maxBodyBytes)}` }));
    await request(app).post('/scim/v2/Users').set('Authorization', `Bearer ${token}`).set('Content-Type', SCIM).send(big).expect(413);
    expect((await refusals()).at(-1)!.d).toMatchObject({ status: 413, method: 'POST' });
    // A value the service quotes back in its message is blanked: the detail names what, not the value.
    await request(app).get('/scim/v2/Users?filter=QUERYMARKER%20zz%20%22QUERYVALUE%22').set('Authorization', `Bearer ${token}`).expect(400);
    const filterRow = (await refusals()).at(-1)!;
    expect(filterRow.d).toMatchObject({ status: 400, path: '/scim/v2/Users' });
    const text = await allAuditText();
    expect(text).not.toContain('BODYMARKER');
    expect(text).not.toContain('QUERYVALUE');
  });

  test(`a flood of 200 bad requests writes at most ${ROWS_PER_MINUTE} + 1 rows and every refusal is counted`, async () => {
    const audit = scimRefusalAuditOf(ctx.store);
    await audit.flush(true); // earlier tests' windows end here: the flood starts a fresh one
    const before = (await refusals()).length;
    const secret = 'FloodSecretFloodSecretFloodSecretFloodSecre';
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          request(app)
            .post(`/scim/v2/flood-${batch * 20 + i}`)
            .set('Authorization', `Bearer cst_ffffffffffffffffffffffff.${secret}`)
            .set('Content-Type', SCIM)
            .send(JSON.stringify({ userName: 'FLOODBODY' }))
            .expect(401),
        ),
      );
    }
    const during = (await refusals()).slice(before);
    expect(during.length).toBe(ROWS_PER_MINUTE);
    await audit.flush(true); // as the minute's end would: the count of the rest is written
    const rows = (await refusals()).slice(before);
    expect(rows.length).toBe(ROWS_PER_MINUTE + 1);
    expect(rows.every((r) => r.actor === 'anonymous' && r.d.status === 401 && String(r.d.path).startsWith('/scim/v2/flood-'))).toBe(true);
    const counted = rows.reduce((n, r) => n + 1 + (typeof r.d.suppressed === 'number' ? r.d.suppressed : 0), 0);
    expect(counted).toBe(200);
    expect(rows.at(-1)!.d.suppressed).toBe(200 - ROWS_PER_MINUTE - 1);
    const text = await allAuditText();
    expect(text).not.toContain('FloodSecret');
    expect(text).not.toContain('FLOODBODY');
  });

  test('a window that has ended folds its count into the next row of the same caller and status', async () => {
    let now = Date.now();
    const audit = new ScimRefusalAudit(ctx.store, { rowsPerMinute: 2, now: () => now });
    const req = { method: 'GET', baseUrl: '/scim/v2', path: '/Users', ip: '192.0.2.99', body: undefined, query: {}, get: () => undefined, requestId: 'fold-test' } as unknown as Parameters<typeof audit.refused>[0];
    const mapped = { status: 401, body: { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'] as [string], status: '401', detail: 'a bearer token is required' } } as Parameters<typeof audit.refused>[2];
    const before = (await refusals()).length;
    for (let i = 0; i < 7; i++) await audit.refused(req, undefined, mapped);
    now += 61_000;
    await audit.refused(req, undefined, mapped);
    const rows = (await refusals()).slice(before);
    expect(rows.map((r) => r.d.suppressed ?? 0)).toEqual([0, 0, 5]);
    expect(rows.every((r) => r.d.from === '192.0.2.99')).toBe(true);
  });

  test('the Provisioning page lists the refusals: caller, request, status, reason and the folded count', async () => {
    const admin = await mintSession(auth.signingKeys, { issuer: ctx.config.auth.tokens.issuer, audience: `${PUBLIC_URL}/admin`, minutes: 30 }, { userId: adminId, byAttribute: false }, { actor: 'test' });
    const res = await request(app).get('/admin/provisioning').set('Cookie', `${SESSION_COOKIE}=${admin.token}`).expect(200);
    const section = res.text.slice(res.text.indexOf('Last refused SCIM requests'), res.text.indexOf('Webhook outbox'));
    expect(section).toContain('anonymous from');
    expect(section).toContain('POST /scim/v2/flood-');
    expect(section).toContain('401');
    expect(section).toContain(`data-suppressed="${200 - ROWS_PER_MINUTE - 1}"`);
    expect(section).toContain('the bearer token is invalid, revoked or expired');
    expect(section).not.toContain('FloodSecret');
    // The token's row in the activity table counts its refusals as errors.
    const activity = res.text.slice(res.text.indexOf('SCIM activity per token'), res.text.indexOf('Last refused SCIM requests'));
    expect(activity).toContain(tokenId);
  });

  test('the audit write fails (its table is gone): the refusal is still answered in SCIM form, without internals', async () => {
    await scimRefusalAuditOf(ctx.store).flush(true);
    const q = (sql: string) => ctx.store.repos.manager.query(sql);
    await q('ALTER TABLE audit_events RENAME TO audit_events_away');
    try {
      const res = await request(app).get('/scim/v2/Users').set('Authorization', 'Bearer nope').expect(401);
      expect(res.headers['content-type']).toContain('application/scim+json');
      expect(res.body).toMatchObject({ status: '401', detail: 'the bearer token is invalid, revoked or expired' });
      expect(res.text).not.toMatch(/audit_events|SQL|\.ts:\d+/);
    } finally {
      await q('ALTER TABLE audit_events_away RENAME TO audit_events');
    }
    await request(app).get('/scim/v2/Groups').set('Authorization', 'Bearer nope').expect(401);
    expect((await refusals()).at(-1)!.d).toMatchObject({ status: 401, path: '/scim/v2/Groups' });
  });
});

describe('SCIM refusal audit with the SQLite writer held', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  test('a refusal is answered while its audit row cannot be written yet; the row follows', async () => {
    let release!: () => void;
    let held = true;
    const holding = ctx.store
      .transaction(() => new Promise<void>((resolve) => (release = resolve)))
      .finally(() => {
        held = false;
      });
    await new Promise((r) => setTimeout(r, 50)); // the transaction has the writer
    try {
      const res = await request(ctx.app).get('/scim/v2/Users').set('Authorization', 'Bearer held-writer').expect(401);
      expect(res.body.status).toBe('401');
      expect(held).toBe(true);
    } finally {
      release();
      await holding;
    }
    await scimRefusalAuditOf(ctx.store).idle();
    const rows = await ctx.store.repos.manager.find(AuditEventEntity, { where: { action: 'scim.refused' } });
    expect(rows.map((r) => JSON.parse(r.detail!).status)).toEqual([401]);
  });
});

describe.each(testDatabaseNames())('SCIM rate-limit refusals on %s', (kind) => {
  let ctx: TestContext;

  beforeAll(async () => {
    ctx = await createTestContext(kind, { CS_SCIM_RATE_LIMIT_PER_MINUTE: '3' });
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  test('429 over the per-token limit: audited with the token id, Retry-After kept', async () => {
    const { token, info } = await new TokenService(ownWrites(ctx.store, (m) => new ApiTokenRepository(m))).create({ name: 'busy IdP', scope: 'scim' });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await request(ctx.app).get('/scim/v2/Users?count=1').set('Authorization', `Bearer ${token}`);
      statuses.push(res.status);
      if (res.status === 429) expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const rows = (await ctx.store.repos.manager.find(AuditEventEntity, { where: { action: 'scim.refused' }, order: { id: 'ASC' } })).map((e) => ({ ...e, d: JSON.parse(e.detail ?? '{}') as Record<string, unknown> }));
    expect(rows).toHaveLength(2);
    for (const r of rows) {
      expect(r).toMatchObject({ actor: `scim:${info.id}`, outcome: 'refused' });
      expect(r.d).toMatchObject({ status: 429, method: 'GET', path: '/scim/v2/Users' });
    }
    expect(JSON.stringify(rows)).not.toContain(token.slice(29));
  });
});

describe('the reason of a refusal event', () => {
  const reqWith = (over: Record<string, unknown>) =>
    ({ method: 'POST', baseUrl: '/scim/v2', path: '/Users', ip: '203.0.113.5', query: {}, get: () => undefined, requestId: 'r', ...over }) as unknown as Parameters<typeof refusalEvent>[0];
  const mapped = (detail: string, status = 400, scimType?: string) => ({ status, body: { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'] as [string], status: String(status), ...(scimType ? { scimType } : {}), detail } }) as Parameters<typeof refusalEvent>[2];

  test('blanks what the client sent (body values, filter words, the token) out of the message, keeps the rest', () => {
    const e = refusalEvent(
      reqWith({ body: { userName: 'private.person@example.com', emails: [{ value: 'other@example.com' }] }, query: { filter: 'userName eq "needle-value"' }, get: (h: string) => (h.toLowerCase() === 'authorization' ? 'Bearer cst_aaaaaaaaaaaaaaaaaaaaaaaa.TokenSecretTokenSecret' : undefined) }),
      undefined,
      mapped('value "private.person@example.com" conflicts with other@example.com near needle-value; token cst_aaaaaaaaaaaaaaaaaaaaaaaa.TokenSecretTokenSecret'),
    );
    const reason = String(e.detail!.reason);
    expect(reason).toBe('value "…" conflicts with … near …; token …');
    expect(e).toMatchObject({ actor: 'anonymous', action: 'scim.refused', outcome: 'refused', detail: { status: 400, method: 'POST', path: '/scim/v2/Users', from: '203.0.113.5' } });
  });

  test('a body that did not parse gets a fixed reason (parser messages quote the body); long reasons are cut', () => {
    expect(refusalEvent(reqWith({ body: undefined }), 't1', mapped('Unexpected token \'S\', "SECRET BODY" is not valid JSON', 400, 'invalidSyntax')).detail!.reason).toBe('the body is not valid JSON (or not JSON)');
    const long = String(refusalEvent(reqWith({ body: {} }), 't1', mapped('x'.repeat(1000))).detail!.reason);
    expect(long.length).toBe(200);
  });
});
