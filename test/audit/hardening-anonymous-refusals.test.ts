import request from 'supertest';
import type { RequestListener } from 'node:http';
import { createRequestListener } from '../../server/http/app';
import { anonymousRefusalsOf, ANONYMOUS_ROWS_PER_MINUTE } from '../../server/auth/sign-in-service';
import { verifyAuditChain } from '../../server/audit/verify';
import { testDatabaseNames } from '../support/databases';
import { createAuthFixture, signedInUser, type AuthFixture } from '../support/auth-fixture';

jest.setTimeout(180_000);

const UNWRAP = '/api/keys/password-key/unwrap';

/**
 * Review finding F5: refused junk tokens on the key API must not each take the audit-chain lock.
 * They are group-committed and bound per client address and error code, with the rest counted;
 * legitimate unwraps in the same flood are answered normally and each keeps its own row.
 */
describe.each(testDatabaseNames())('anonymous key API refusals are bounded (%s)', (kind) => {
  let f: AuthFixture;
  let app: RequestListener;
  let alice: { id: string; wrappedPasswordKey: string };
  let token: string;

  beforeAll(async () => {
    f = await createAuthFixture(kind);
    app = createRequestListener(f);
    ({ token, ...alice } = await signedInUser(f, 'alice@example.com'));
  });
  afterAll(async () => f?.cleanupAll());

  const q = (sql: string) => f.store.dataSource.query(sql) as Promise<Record<string, unknown>[]>;

  test('500 junk-token requests among 50 real unwraps: bounded refusal rows, every refusal counted, unwraps unaffected', async () => {
    const [{ s }] = await q('SELECT MAX(seq) AS s FROM audit_events');
    const before = Number(s ?? 0);
    const statuses: number[] = [];
    const junk = Array.from({ length: 500 }, (_, i) =>
      request(app).get('/api/keys/me').set('Authorization', `Bearer junk${i}`).set('X-Request-Id', `junk-${i}`).then((r) => statuses.push(r.status)),
    );
    const real = Array.from({ length: 50 }, (_, i) =>
      request(app).post(UNWRAP).set('Authorization', `Bearer ${token}`).set('X-Request-Id', `real-${kind}-${i}`).send({ wrappedPasswordKey: alice.wrappedPasswordKey }),
    );
    const [, answers] = await Promise.all([Promise.all(junk), Promise.all(real)]);
    expect(statuses.filter((x) => x !== 401)).toEqual([]);
    expect(answers.map((r) => r.status)).toEqual(Array(50).fill(200));

    // Within the minute: at most the bound written, the rest held as a count.
    const during = await q(`SELECT detail FROM audit_events WHERE action = 'token.verify' AND seq > ${before}`);
    expect(during.length).toBeLessThanOrEqual(ANONYMOUS_ROWS_PER_MINUTE);
    expect(during.length).toBeGreaterThan(0);
    await anonymousRefusalsOf(f.store).flush(true);

    const rows = await q(`SELECT actor, outcome, detail FROM audit_events WHERE action = 'token.verify' AND seq > ${before}`);
    expect(rows.length).toBeLessThanOrEqual(ANONYMOUS_ROWS_PER_MINUTE + 1);
    const counted = rows.reduce((n, r) => n + 1 + Number((JSON.parse(String(r.detail)) as { suppressed?: number }).suppressed ?? 0), 0);
    expect(counted).toBe(500);
    expect(rows.every((r) => r.actor === 'anonymous' && r.outcome === 'refused')).toBe(true);

    // Each real unwrap still has its own row, and the chain holds.
    const unwraps = await q(`SELECT request_id FROM audit_events WHERE action = 'password-key.unwrap' AND outcome = 'success' AND seq > ${before}`);
    expect(new Set(unwraps.map((r) => String(r.request_id)))).toEqual(new Set(Array.from({ length: 50 }, (_, i) => `real-${kind}-${i}`)));
    expect(await verifyAuditChain(f.store.dataSource, f.kms)).toMatchObject({ ok: true });
  });

  test('an authenticated refusal (wrong blob for this user) keeps one row per request', async () => {
    const [{ s }] = await q('SELECT MAX(seq) AS s FROM audit_events');
    const n = ANONYMOUS_ROWS_PER_MINUTE + 5;
    const forged = Buffer.from(alice.wrappedPasswordKey).reverse().toString();
    const answers = await Promise.all(
      Array.from({ length: n }, (_, i) => request(app).post(UNWRAP).set('Authorization', `Bearer ${token}`).set('X-Request-Id', `bad-${kind}-${i}`).send({ wrappedPasswordKey: forged })),
    );
    expect(answers.every((r) => r.status >= 400 && r.status < 500)).toBe(true);
    const rows = await q(`SELECT actor FROM audit_events WHERE outcome = 'refused' AND request_id LIKE 'bad-${kind}-%' AND seq > ${Number(s ?? 0)}`);
    expect(rows).toHaveLength(n);
    expect(rows.every((r) => r.actor === `user:${alice.id}`)).toBe(true);
  });
});
