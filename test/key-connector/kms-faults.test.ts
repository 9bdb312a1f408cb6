import { randomBytes, randomUUID } from 'node:crypto';
import request from 'supertest';
import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { SpyAdapter } from '../support/spy-kms';
import { SwitchableKms } from '../fault/support';
import { startOidcIssuer, type OidcIssuer } from '../emulators/oidc-issuer';
import { createApp } from '../../server/http/app';
import { KmsUnavailableError } from '../../server/errors';
import { KeyConnectorUserKeyEntity } from '../../entities';

/** The KMS behind the Key Connector API: outages answer 503 with nothing stored; plaintext is zeroed. */
describe.each(testDatabaseNames())('Key Connector and the KMS on %s', (kind) => {
  let idp: OidcIssuer;
  let ctx: TestContext;
  let spy: SpyAdapter;
  let app: ReturnType<typeof createApp>;
  beforeAll(async () => {
    idp = await startOidcIssuer();
    ctx = await createTestContext(kind, { CS_KEY_CONNECTOR_ISSUER: idp.issuer });
    spy = new SpyAdapter();
    app = createApp({ ...ctx, kms: spy.registry([ctx.config.kms.kekUri]) });
  });
  afterAll(async () => {
    await ctx?.cleanup();
    await idp?.close();
  });

  const send = async (method: 'post' | 'put', sub: string, key: string) => request(app)[method]('/key-connector/user-keys').set('Authorization', `Bearer ${await idp.token(sub)}`).send({ key });
  const get = async (sub: string) => request(app).get('/key-connector/user-keys').set('Authorization', `Bearer ${await idp.token(sub)}`);

  test('KMS outage on POST and PUT: 503 + Retry-After, nothing stored, audited as failure; the retry succeeds', async () => {
    const sub = randomUUID();
    for (const method of ['post', 'put'] as const) {
      spy.failNext = new KmsUnavailableError('injected outage', { retryAfter: 7 });
      const r = await send(method, sub, randomBytes(32).toString('base64'));
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBe('7');
      expect(JSON.stringify(r.body)).not.toContain('injected');
      expect(await ctx.store.dataSource.manager.count(KeyConnectorUserKeyEntity, { where: { sub } })).toBe(0);
    }
    const failures = await ctx.store.repos.audit.recent(10, { targetId: sub, outcome: 'failure' });
    expect(failures.map((e) => e.action).sort()).toEqual(['key-connector.create', 'key-connector.replace']);
    expect((await send('post', sub, randomBytes(32).toString('base64'))).status).toBe(200);
  });

  test('KMS outage on GET: 503, no key in the answer, audited; then the key reads', async () => {
    const sub = randomUUID();
    const key = randomBytes(32).toString('base64');
    expect((await send('post', sub, key)).status).toBe(200);
    spy.failNext = new KmsUnavailableError('injected outage');
    const r = await get(sub);
    expect(r.status).toBe(503);
    expect(r.body.key).toBeUndefined();
    expect((await ctx.store.repos.audit.recent(5, { targetId: sub, action: 'key-connector.get' }))[0]).toMatchObject({ outcome: 'failure' });
    expect((await get(sub)).body).toEqual({ key });
  });

  test('every plaintext key handed to the KMS is zeroed once the request is answered', async () => {
    spy.wrappedPlaintexts = [];
    const sub = randomUUID();
    expect((await send('post', sub, randomBytes(32).toString('base64'))).status).toBe(200);
    expect((await send('put', sub, randomBytes(32).toString('base64'))).status).toBe(200);
    expect(spy.wrappedPlaintexts).toHaveLength(2);
    for (const p of spy.wrappedPlaintexts) expect(Buffer.from(p).every((b) => b === 0)).toBe(true);
  });
  test('KMS hung on POST and GET: no transaction or writer held meanwhile (other requests, which write audit rows, are served); the calls finish on resume', async () => {
    const hung = new SwitchableKms(ctx.store);
    const hungApp = createApp({ ...ctx, kms: hung.registry([ctx.config.kms.kekUri]) });
    const call = async (method: 'get' | 'post', sub: string, key?: string) => {
      const r = request(hungApp)[method]('/key-connector/user-keys').set('Authorization', `Bearer ${await idp.token(sub)}`);
      return key === undefined ? r : r.send({ key });
    };
    const sub = randomUUID();
    const key = randomBytes(32).toString('base64');
    const whileHung = async (pending: Promise<request.Response>, kmsCalls: number) => {
      // The gate records each call as it starts waiting.
      while (hung.duringTransaction.length < kmsCalls) await new Promise((r) => setTimeout(r, 5));
      // A refusal that is audited (a database write) completes while the KMS call waits.
      expect((await call('get', randomUUID())).status).toBe(404);
      hung.resume();
      return pending;
    };
    hung.hangCalls();
    expect((await whileHung(call('post', sub, key), 1)).status).toBe(200);
    hung.hangCalls();
    const got = await whileHung(call('get', sub), 2);
    expect(got.status).toBe(200);
    expect(got.body).toEqual({ key });
    expect(hung.duringTransaction).toEqual([false, false]);
  });
});
