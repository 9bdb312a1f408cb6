import { randomBytes, randomUUID } from 'node:crypto';
import request from 'supertest';
import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { startOidcIssuer, type OidcIssuer } from '../emulators/oidc-issuer';

/**
 * CS_KEY_CONNECTOR_REFUSE_DEACTIVATED=true: a read is refused while a SCIM user linked to the
 * token (externalId = sub, or userName / email = the token's email) is deactivated or deleted.
 */
describe.each(testDatabaseNames())('Key Connector reads of SCIM-deactivated users on %s', (kind) => {
  let idp: OidcIssuer;
  let ctx: TestContext;
  beforeAll(async () => {
    idp = await startOidcIssuer();
    ctx = await createTestContext(kind, { CS_KEY_CONNECTOR_ISSUER: idp.issuer, CS_KEY_CONNECTOR_REFUSE_DEACTIVATED: 'true' });
  });
  afterAll(async () => {
    await ctx?.cleanup();
    await idp?.close();
  });

  const store = async (token: string) => (await request(ctx.app).put('/key-connector/user-keys').set('Authorization', `Bearer ${token}`).send({ key: randomBytes(32).toString('base64') })).status;
  const read = async (token: string) => request(ctx.app).get('/key-connector/user-keys').set('Authorization', `Bearer ${token}`);

  test.each([
    ['email', (sub: string) => ({ userName: `m-${sub}@corp.example`, email: `Member-${sub}@Corp.Example` }), (sub: string) => ({ email: `member-${sub}@corp.example` })],
    ['userName', (sub: string) => ({ userName: `Member-${sub}@corp.example` }), (sub: string) => ({ email: `member-${sub}@corp.example` })],
    ['externalId', (sub: string) => ({ userName: `x-${sub}@corp.example`, externalId: sub.toUpperCase() }), () => ({ email: 'unrelated@example.com' })],
  ])('linked by %s: readable while active, refused (403, audited) once deactivated, readable again when reactivated', async (_by, scimUser, claims) => {
    const sub = randomUUID();
    const token = await idp.token(sub, claims(sub));
    const u = await ctx.keys.provisionUser(scimUser(sub), { actor: 'test' });
    expect(await store(token)).toBe(200);
    expect((await read(token)).status).toBe(200);

    await ctx.keys.setUserActive(u.id, false, { actor: 'test' });
    const refused = await read(token);
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ code: 'user_inactive' });
    expect(refused.body.key).toBeUndefined();
    const ev = (await ctx.store.repos.audit.recent(5, { action: 'key-connector.get', targetId: sub }))[0];
    expect(ev).toMatchObject({ outcome: 'refused', actor: `key-connector:${sub}` });

    // Someone else with an unrelated identity is not affected.
    const other = await idp.token(randomUUID(), { email: 'someone-else@example.com' });
    expect(await store(other)).toBe(200);
    expect((await read(other)).status).toBe(200);

    await ctx.keys.setUserActive(u.id, true, { actor: 'test' });
    expect((await read(token)).status).toBe(200);
  });
});
