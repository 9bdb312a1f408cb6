import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import { TestIdp } from '../support/saml-idp';
import { SESSION_COOKIE, SIGN_IN_COOKIE } from '../../admin/session';

/**
 * The console's SAML sign-in end to end over HTTP (the IdP's side played by the test IdP's keys):
 * /admin/login → AuthnRequest → signed response to the shared ACS → /admin/auth/complete with the
 * browser's sign-in cookie → session. Admin by CS_ADMIN_SAML_ATTRIBUTE (no group configured): the
 * attribute grants, its absence or another value does not, and a client code cannot be turned
 * into a console session. Runs on SQLite, PostgreSQL and MariaDB.
 */
jest.setTimeout(120_000);

const ROLE = 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role';

describe.each(testDatabaseNames())('console SAML sign-in on %s', (kind) => {
  let ctx: TestContext;
  let idp: TestIdp;
  const base = 'http://console.test';

  beforeAll(async () => {
    idp = await TestIdp.start({ spEntityId: `${base}/auth/saml/metadata` });
    ctx = await createTestContext(kind, {
      CS_PUBLIC_URL: base,
      CS_SAML_IDP_SSO_URL: idp.ssoUrl,
      CS_SAML_IDP_CERTS: idp.cert,
      CS_SAML_IDP_ENTITY_ID: idp.entityId,
      CS_ADMIN_SAML_ATTRIBUTE: `${ROLE}=CryptoServerAdmin`,
      CS_TRUST_PROXY: 'loopback',
      CS_CLIENTS: JSON.stringify([{ clientId: 'web', redirectUris: ['https://app.example.com/'] }]),
    });
    await ctx.keys.provisionUser({ userName: 'ops@example.com' }, { actor: 'test' });
  });
  afterAll(async () => {
    await ctx?.cleanup();
    await idp?.close();
  });

  /** Runs the round trip; returns the completion response and the cookie it set, if any. */
  async function signIn(attributes: Record<string, string | string[]>, opts: { dropBrowserCookie?: boolean; https?: boolean } = {}) {
    const login = await request(ctx.app).get('/admin/login').expect(302);
    const signInCookie = ([] as string[]).concat(login.headers['set-cookie'] ?? []).find((c) => c.startsWith(`${SIGN_IN_COOKIE}=`))!;
    expect(signInCookie).toMatch(/HttpOnly/);
    expect(signInCookie).toMatch(/SameSite=Lax/);
    const { request: authn } = TestIdp.parseRedirect(login.headers.location);
    expect(authn.acsUrl).toBe(`${base}/auth/saml/acs`);
    const answer = await idp.respond(authn, { nameId: 'ops@example.com', attributes });
    const acs = await request(ctx.app).post('/auth/saml/acs').type('form').send({ SAMLResponse: answer }).expect(303);
    const next = new URL(acs.headers.location);
    expect(`${next.origin}${next.pathname}`).toBe(`${base}/admin/auth/complete`);
    const t = request(ctx.app).get(`${next.pathname}${next.search}`).set('X-Forwarded-Proto', opts.https ? 'https' : 'http');
    const done = await (opts.dropBrowserCookie ? t : t.set('Cookie', signInCookie.split(';')[0]));
    const session = ([] as string[]).concat(done.headers['set-cookie'] ?? []).find((c) => c.startsWith(`${SESSION_COOKIE}=`) && !c.startsWith(`${SESSION_COOKIE}=;`));
    return { done, session: session?.split(';')[0], attributes: session };
  }

  test('the attribute value grants the console; the session then opens every page', async () => {
    const { done, session } = await signIn({ [ROLE]: ['Reader', 'CryptoServerAdmin'] });
    expect(done.status).toBe(200);
    expect(done.text).toContain('url=/admin/');
    expect(session).toBeDefined();
    const tokens = await request(ctx.app).get('/admin/tokens').set('Cookie', session!).expect(200);
    expect(tokens.text).toContain('ops@example.com');
    const ok = (await ctx.store.repos.audit.recent(10, { action: 'admin.login', outcome: 'success' }))[0];
    expect(JSON.parse(ok.detail!)).toEqual({ by: 'attribute' });
  });

  test('the session cookie is Secure behind an https proxy (CS_TRUST_PROXY), and not over plain http', async () => {
    const overHttps = await signIn({ [ROLE]: 'CryptoServerAdmin' }, { https: true });
    expect(overHttps.attributes).toMatch(/; Secure/);
    expect(overHttps.attributes).toMatch(/HttpOnly; SameSite=Strict/);
    const overHttp = await signIn({ [ROLE]: 'CryptoServerAdmin' });
    expect(overHttp.attributes).not.toMatch(/Secure/);
  });

  test('without the attribute, or with another value, the sign-in ends on 403 and no session', async () => {
    const cases: Record<string, string>[] = [{}, { [ROLE]: 'Reader' }, { role: 'CryptoServerAdmin' }];
    for (const attributes of cases) {
      const { done, session } = await signIn(attributes);
      expect(done.status).toBe(403);
      expect(done.text).toContain('Not an administrator');
      expect(session).toBeUndefined();
    }
  });

  test('the completion from a browser that did not start the sign-in is refused', async () => {
    const { done, session } = await signIn({ [ROLE]: 'CryptoServerAdmin' }, { dropBrowserCookie: true });
    expect(done.status).toBe(400);
    expect(session).toBeUndefined();
  });

  test('a client sign-in carrying the attribute gets a client code, not a console session', async () => {
    const authorize = await request(ctx.app)
      .get('/oauth/authorize')
      .query({ client_id: 'web', redirect_uri: 'https://app.example.com/', response_type: 'code', code_challenge_method: 'S256', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM' })
      .expect(302);
    const { request: authn } = TestIdp.parseRedirect(authorize.headers.location);
    const answer = await idp.respond(authn, { nameId: 'ops@example.com', attributes: { [ROLE]: 'CryptoServerAdmin' } });
    const acs = await request(ctx.app).post('/auth/saml/acs').type('form').send({ SAMLResponse: answer }).expect(303);
    const code = new URL(acs.headers.location).searchParams.get('code')!;
    expect(acs.headers.location.startsWith('https://app.example.com/')).toBe(true);
    const done = await request(ctx.app).get(`/admin/auth/complete?code=${encodeURIComponent(code)}`).expect(400);
    expect(done.headers['set-cookie']?.toString() ?? '').not.toMatch(new RegExp(`${SESSION_COOKIE}=[^;]`));
  });
});
