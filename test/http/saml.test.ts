import request from 'supertest';
import { makeKeyAndCert } from '../support/certs';
import { createApp } from '../../server/http/app';
import { testDatabaseNames } from '../support/databases';
import {
  ACS_URL,
  auditOf,
  createAuthFixture,
  DESKTOP,
  idpAnswer,
  newVerifier,
  postToAcs,
  SP_ENTITY_ID,
  startSignIn,
  WEB,
  type AuthFixture,
} from '../support/auth-fixture';
import { TestIdp, type ResponseOptions } from '../support/saml-idp';
import pino from 'pino';
import { inflateRawSync } from 'node:zlib';
import { s256Challenge } from '../../server/auth/pkce';

const EMAIL = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';

/** The AuthnRequest XML that /oauth/authorize sends to the IdP (redirect binding: deflate + base64). */
async function authnRequestXml(f: AuthFixture): Promise<string> {
  const res = await request(f.app)
    .get('/oauth/authorize')
    .query({ response_type: 'code', client_id: WEB.clientId, redirect_uri: WEB.redirectUri, code_challenge: s256Challenge(newVerifier()), code_challenge_method: 'S256', state: 's' });
  expect(res.status).toBe(302);
  TestIdp.parseRedirect(res.headers.location); // a well-formed AuthnRequest
  return inflateRawSync(Buffer.from(new URL(res.headers.location).searchParams.get('SAMLRequest')!, 'base64')).toString('utf8');
}

/**
 * SAML 2.0 sign-in against a test IdP built on xml-crypto: the happy paths (signed assertion,
 * encrypted assertion, IdP certificate rollover, loopback client) and every attack the issue lists.
 * Each refusal must answer a 4xx page AND leave a `saml.login` audit event with outcome `refused`.
 */
describe.each(testDatabaseNames())('SAML sign-in on %s', (kind) => {
  let f: AuthFixture;
  const alice = { nameId: 'alice@example.com', attributes: { email: 'alice@example.com' } };
  let aliceId: string;

  beforeAll(async () => {
    f = await createAuthFixture(kind);
    aliceId = (await f.keys.provisionUser({ userName: 'alice@example.com', email: 'alice@example.com' }, { actor: 'test' })).id;
    await f.keys.provisionUser({ userName: 'mallory@example.com' }, { actor: 'test' });
  });
  afterAll(async () => {
    await f?.cleanupAll();
  });

  test('SP metadata names the entity ID, the ACS and the signing/encryption certificate', async () => {
    const res = await request(f.app).get('/auth/saml/metadata');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/samlmetadata\+xml/);
    expect(res.text).toContain(`entityID="${SP_ENTITY_ID}"`);
    expect(res.text).toContain(`Location="${ACS_URL}"`);
    expect(res.text).toContain('WantAssertionsSigned="true"');
    expect(res.text).toMatch(/use="signing"/);
    expect(res.text).toMatch(/use="encryption"/);
  });

  test('SP metadata and every AuthnRequest ask for the emailAddress NameID that CS_SAML_USER_ATTRIBUTE=nameid needs', async () => {
    const md = await request(f.app).get('/auth/saml/metadata');
    expect(md.text).toContain(`<NameIDFormat>${EMAIL}</NameIDFormat>`);
    expect(await authnRequestXml(f)).toMatch(new RegExp(`<samlp:NameIDPolicy [^>]*Format="${EMAIL}"`));
  });

  test('authorize sends a signed AuthnRequest by the redirect binding and stores its ID', async () => {
    const started = await startSignIn(f);
    expect(started.request.acsUrl).toBe(ACS_URL);
    expect(started.request.issuer).toBe(SP_ENTITY_ID);
    expect(started.request.destination).toBe(f.idp.ssoUrl);
    expect(await f.store.repos.samlRequests.peek(started.request.id, new Date())).toMatchObject({ pending: { clientId: 'web' } });
  });

  test('a signed assertion signs alice in: 303 to the registered redirect with code, state and iss', async () => {
    const started = await startSignIn(f);
    const res = await postToAcs(f, await idpAnswer(f, started, alice));
    expect(res.status).toBe(303);
    const loc = new URL(res.headers.location);
    expect(`${loc.origin}${loc.pathname}`).toBe(WEB.redirectUri);
    expect(loc.searchParams.get('state')).toBe(started.state);
    expect(loc.searchParams.get('code')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(loc.searchParams.get('iss')).toBe('http://127.0.0.1:8080');
    expect(res.headers['cache-control']).toBe('no-store');
    const events = await auditOf(f, 'saml.login');
    expect(events[0]).toMatchObject({ outcome: 'success', targetId: aliceId });
  });

  test('an encrypted assertion (to the SP certificate) is accepted', async () => {
    const started = await startSignIn(f);
    const res = await postToAcs(f, await idpAnswer(f, started, alice, { encryptFor: f.sp.cert }));
    expect(res.status).toBe(303);
    expect(new URL(res.headers.location).searchParams.get('code')).toBeTruthy();
  });

  test('IdP certificate rollover: an assertion signed with the next configured certificate is accepted', async () => {
    const started = await startSignIn(f);
    const res = await postToAcs(f, await idpAnswer(f, started, alice, { signWith: f.nextIdpKeys }));
    expect(res.status).toBe(303);
  });

  test('response and assertion both signed is accepted', async () => {
    const started = await startSignIn(f);
    expect((await postToAcs(f, await idpAnswer(f, started, alice, { sign: 'both' }))).status).toBe(303);
  });

  test('two replicas on one database: sign-in started on one completes on the other, replay refused on either', async () => {
    const replicaB = createApp(f);
    const started = await startSignIn(f); // replica A (f.app)
    const answer = await idpAnswer(f, started, alice);
    const onB = await request(replicaB).post('/auth/saml/acs').type('form').send({ SAMLResponse: answer });
    expect(onB.status).toBe(303);
    expect((await postToAcs(f, answer)).status).toBe(403);
    expect((await request(replicaB).post('/auth/saml/acs').type('form').send({ SAMLResponse: answer })).status).toBe(403);
  });

  test('a desktop client with a loopback redirect on any port', async () => {
    const started = await startSignIn(f, { clientId: DESKTOP.clientId, redirectUri: 'http://127.0.0.1:53219/callback' });
    const res = await postToAcs(f, await idpAnswer(f, started, alice));
    expect(res.status).toBe(303);
    expect(res.headers.location).toMatch(/^http:\/\/127\.0\.0\.1:53219\/callback\?code=/);
  });

  // ---- attacks: each one a 4xx page and a refused audit event ---------------------------------

  async function expectRefused(samlResponse: string, reason: RegExp, status = 403): Promise<void> {
    const before = (await auditOf(f, 'saml.login')).filter((e) => e.outcome === 'refused').length;
    const res = await postToAcs(f, samlResponse);
    expect(res.status).toBe(status);
    expect(res.headers.location).toBeUndefined();
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.text).toMatch(/Sign-in refused/);
    expect(res.text).not.toContain('code=');
    const refused = (await auditOf(f, 'saml.login')).filter((e) => e.outcome === 'refused');
    expect(refused.length).toBe(before + 1);
    expect(JSON.parse(refused[0].detail ?? '{}').reason).toMatch(reason);
  }

  const attack = async (overrides: Partial<ResponseOptions>, reason: RegExp) => {
    const started = await startSignIn(f);
    await expectRefused(await idpAnswer(f, started, alice, overrides), reason);
  };

  test('unsigned assertion', () => attack({ sign: 'none' }, /signature/i));
  test('only the Response is signed, not the assertion', () => attack({ sign: 'response' }, /signature/i));
  test('tampered assertion (NameID changed after signing)', () => attack({ tamper: 'mallory@example.com' }, /signature/i));
  test('assertion signed by an unknown key', () => attack({ signWith: makeKeyAndCert('attacker') }, /signature/i));
  test('signature wrapping: an unsigned assertion next to the signed one', () =>
    attack({ wrap: 'extra-assertion', wrapUser: { nameId: 'mallory@example.com' } }, /multiple assertions|signature/i));
  test('signature wrapping: signed assertion moved into Extensions, evil one carries its signature', () =>
    attack({ wrap: 'moved-signed-assertion', wrapUser: { nameId: 'mallory@example.com' } }, /signature|Referenced node/i));
  test('signature wrapping: evil assertion with the same ID hidden in Extensions', () =>
    attack({ wrap: 'evil-first-assertion-in-extensions', wrapUser: { nameId: 'mallory@example.com' } }, /ID|signature/i));
  test('wrong audience', () => attack({ audience: 'https://other-sp.example.com' }, /audience/i));
  test('wrong recipient', () => attack({ recipient: 'https://other-sp.example.com/acs' }, /recipient/i));
  test('wrong destination', () => attack({ destination: 'https://other-sp.example.com/acs' }, /destination/i));
  test('wrong issuer', () => attack({ issuer: 'https://evil-idp.example.com' }, /issuer/i));
  test('expired assertion', () => attack({ notBeforeSec: -1200, notOnOrAfterSec: -600 }, /expired|subject confirmation/i));

  test.each([
    ['wholly expired', { notBeforeSec: -1200, notOnOrAfterSec: -600 }, 'it is expired or not yet valid (check the clocks)'],
    ['not yet valid', { notBeforeSec: 600, notOnOrAfterSec: 1200 }, 'it is expired or not yet valid (check the clocks)'],
    ['two assertions', { wrap: 'extra-assertion' as const, wrapUser: { nameId: 'mallory@example.com' } }, 'it carries more than one assertion'],
    ['unsigned', { sign: 'none' as const }, 'its signature is missing or does not verify'],
  ])('the page tells the person what went wrong: %s', async (_name, overrides, message) => {
    const started = await startSignIn(f);
    const res = await postToAcs(f, await idpAnswer(f, started, alice, overrides));
    expect(res.status).toBe(403);
    expect(res.text).toContain(message);
  });
  test('not-yet-valid assertion', () => attack({ notBeforeSec: 600, notOnOrAfterSec: 1200 }, /not yet valid/i));
  test('XML with a DOCTYPE and entities', () => attack({ doctype: true }, /DOCTYPE/));
  test('SHA-1 signature (otherwise valid)', () => attack({ sha1: true }, /SHA-1/));

  test('comment injection in the NameID (alice@example.com<!---->.evil.example) does not become alice', async () => {
    const started = await startSignIn(f);
    const xml = Buffer.from(await idpAnswer(f, started, { nameId: 'alice@example.com.evil.example' }), 'base64').toString('utf8');
    // Comments are outside the signature (exclusive c14n without comments): the signature still verifies.
    const injected = xml.replace('>alice@example.com.evil.example<', '>alice@example.com<!---->.evil.example<');
    expect(injected).not.toBe(xml);
    const res = await postToAcs(f, Buffer.from(injected).toString('base64'));
    expect(res.status).toBe(403);
    const ev = (await auditOf(f, 'saml.login'))[0];
    expect(JSON.parse(ev.detail!)).toMatchObject({ nameId: 'alice@example.com.evil.example', reason: 'no provisioned user matches' });
  });

  test('replayed response (InResponseTo used twice)', async () => {
    const started = await startSignIn(f);
    const answer = await idpAnswer(f, started, alice);
    expect((await postToAcs(f, answer)).status).toBe(303);
    await expectRefused(answer, /InResponseTo/);
  });

  test('replays racing each other: exactly one wins', async () => {
    const started = await startSignIn(f);
    const answer = await idpAnswer(f, started, alice);
    const results = await Promise.all([postToAcs(f, answer), postToAcs(f, answer), postToAcs(f, answer)]);
    expect(results.map((r) => r.status).sort()).toEqual([303, 403, 403]);
  });

  test('response for a request this server never made', async () => {
    const started = await startSignIn(f);
    await expectRefused(await idpAnswer(f, started, alice, { inResponseTo: '_f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed' }), /InResponseTo/);
  });

  test('unsolicited (IdP-initiated) response is refused by default', async () => {
    const started = await startSignIn(f);
    await expectRefused(await idpAnswer(f, started, alice, { inResponseTo: null }), /InResponseTo/);
  });

  test('a signed assertion for request A inside a Response claiming request B', async () => {
    const a = await startSignIn(f);
    const b = await startSignIn(f);
    const xml = Buffer.from(await idpAnswer(f, a, alice), 'base64').toString('utf8');
    const forged = xml.replace(`InResponseTo="${a.request.id}"`, `InResponseTo="${b.request.id}"`); // first occurrence: the Response
    await expectRefused(Buffer.from(forged).toString('base64'), /InResponseTo|another request/);
  });

  test('a request whose ID expired in the database', async () => {
    const started = await startSignIn(f);
    await f.store.dataSource.query(`UPDATE saml_requests SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = ${kind === 'postgres' ? '$1' : '?'}`, [started.request.id]);
    await expectRefused(await idpAnswer(f, started, alice), /InResponseTo/);
  });

  test('assertion for an unknown user: a clear page', async () => {
    const started = await startSignIn(f);
    const res = await postToAcs(f, await idpAnswer(f, started, { nameId: 'stranger@example.com' }));
    expect(res.status).toBe(403);
    expect(res.text).toMatch(/not provisioned for Crypto Server or is deactivated/);
    const ev = (await auditOf(f, 'saml.login'))[0];
    expect(ev).toMatchObject({ outcome: 'refused' });
    expect(JSON.parse(ev.detail!)).toMatchObject({ reason: 'no provisioned user matches', nameId: 'stranger@example.com', error: 'unknown_user' });
  });

  test('assertion for a deactivated user', async () => {
    const bob = await f.keys.provisionUser({ userName: 'bob@example.com' }, { actor: 'test' });
    await f.keys.setUserActive(bob.id, false, { actor: 'test' });
    const started = await startSignIn(f);
    const res = await postToAcs(f, await idpAnswer(f, started, { nameId: 'bob@example.com' }));
    expect(res.status).toBe(403);
    expect(JSON.parse((await auditOf(f, 'saml.login'))[0].detail!)).toMatchObject({ reason: 'user is deactivated' });
  });

  test('garbage, non-base64 and oversized bodies', async () => {
    await expectRefused(Buffer.from('<notxml').toString('base64'), /./);
    await expectRefused('%%%not-base64%%%', /base64/);
    const noBody = await request(f.app).post('/auth/saml/acs').type('form').send({});
    expect(noBody.status).toBe(403);
    const huge = await request(f.app).post('/auth/saml/acs').type('form').send({ SAMLResponse: 'A'.repeat(400 * 1024) });
    expect(huge.status).toBe(413);
  });

  test('an IdP error status is refused', async () => {
    const started = await startSignIn(f);
    await expectRefused(await idpAnswer(f, started, alice, { status: 'urn:oasis:names:tc:SAML:2.0:status:Requester' }), /Requester|status/);
  });

  test.each([
    ['Responder, assertion signed', { status: 'urn:oasis:names:tc:SAML:2.0:status:Responder' }],
    ['Requester, response and assertion signed', { status: 'urn:oasis:names:tc:SAML:2.0:status:Requester', sign: 'both' as const }],
    ['AuthnFailed as the top-level code', { status: 'urn:oasis:names:tc:SAML:2.0:status:AuthnFailed' }],
  ])('a non-Success status around a validly signed assertion is refused (%s): no code, audited', async (_name, overrides) => {
    const started = await startSignIn(f);
    const answer = await idpAnswer(f, started, alice, { ...overrides, keepAssertion: true });
    // The assertion itself is valid: the same IdP answer with Success signs alice in.
    expect(Buffer.from(answer, 'base64').toString('utf8')).toMatch(/<ds:SignatureValue>/);
    const short = overrides.status.split(':').pop()!;
    await expectRefused(answer, new RegExp(`status is not Success but ${short}`));
    const page = await postToAcs(f, answer);
    expect(page.text).toContain(`the identity provider reported an error (${short})`);
  });

  test('a response with a nested status code and message is refused with both in the audit reason', async () => {
    const started = await startSignIn(f);
    const xml = Buffer.from(await idpAnswer(f, started, alice, { status: 'urn:oasis:names:tc:SAML:2.0:status:Responder', keepAssertion: true }), 'base64').toString('utf8');
    const nested = xml.replace(
      '<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"/>',
      '<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:NoPassive"/></samlp:StatusCode><samlp:StatusMessage>user must sign in interactively</samlp:StatusMessage>',
    );
    expect(nested).not.toBe(xml);
    await expectRefused(Buffer.from(nested).toString('base64'), /Responder\/NoPassive \(user must sign in interactively\)/);
  });
});

describe('SAML user mapping by attribute', () => {
  let f: AuthFixture;
  afterEach(async () => {
    await f?.cleanupAll();
  });

  test('matched by an attribute, the NameID is not used: metadata and AuthnRequests ask for the unspecified format', async () => {
    f = await createAuthFixture('sqlite', { CS_SAML_USER_ATTRIBUTE: 'email' });
    const unspecified = 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified';
    expect((await request(f.app).get('/auth/saml/metadata')).text).toContain(`<NameIDFormat>${unspecified}</NameIDFormat>`);
    expect(await authnRequestXml(f)).toMatch(new RegExp(`<samlp:NameIDPolicy [^>]*Format="${unspecified}"`));
  });

  test('CS_SAML_NAMEID_FORMAT=persistent overrides what is requested', async () => {
    f = await createAuthFixture('sqlite', { CS_SAML_USER_ATTRIBUTE: 'externalId', CS_SAML_NAMEID_FORMAT: 'persistent' });
    expect(await authnRequestXml(f)).toContain('Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"');
  });

  test('"not provisioned" logs the NameID and its format the IdP sent (a transient NameID explains it)', async () => {
    f = await createAuthFixture('sqlite');
    await f.keys.provisionUser({ userName: 'henry@example.com' }, { actor: 'test' });
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const app = createApp({ ...f, log });
    const started = await startSignIn(f);
    const transient = 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient';
    const answer = await idpAnswer(f, started, { nameId: '_3f9a1c0e5d7b', nameIdFormat: transient });
    const res = await request(app).post('/auth/saml/acs').type('form').send({ SAMLResponse: answer });
    expect(res.status).toBe(403);
    expect(res.text).toMatch(/not provisioned/);
    expect(res.text).not.toContain('_3f9a1c0e5d7b');
    const entry = lines.map((l) => JSON.parse(l) as { detail?: string; code?: string }).find((e) => e.code === 'unknown_user');
    expect(entry?.detail).toContain(`NameID "_3f9a1c0e5d7b" (format ${transient})`);
    expect(entry?.detail).toContain('CS_SAML_USER_ATTRIBUTE=nameid');
    expect(JSON.parse((await auditOf(f, 'saml.login'))[0].detail!)).toMatchObject({ nameId: '_3f9a1c0e5d7b', nameIdFormat: transient });
  });

  test('externalId attribute maps to the SCIM externalId', async () => {
    f = await createAuthFixture('sqlite', { CS_SAML_USER_ATTRIBUTE: 'externalId', CS_SAML_USER_ATTRIBUTE_NAME: 'objectId' });
    const u = await f.keys.provisionUser({ userName: 'carol@example.com', externalId: 'ext-123' }, { actor: 'test' });
    const started = await startSignIn(f);
    const ok = await postToAcs(f, await idpAnswer(f, started, { nameId: 'whatever', attributes: { objectId: 'ext-123' } }));
    expect(ok.status).toBe(303);
    expect((await auditOf(f, 'saml.login'))[0]).toMatchObject({ targetId: u.id, outcome: 'success' });
    const again = await startSignIn(f);
    const missing = await postToAcs(f, await idpAnswer(f, again, { nameId: 'carol@example.com' }));
    expect(missing.status).toBe(403);
    expect(missing.text).toMatch(/not provisioned/);
  });

  test('email attribute, case-insensitive; ambiguous email refused', async () => {
    f = await createAuthFixture('sqlite', { CS_SAML_USER_ATTRIBUTE: 'email' });
    await f.keys.provisionUser({ userName: 'dave', email: 'Dave@Example.com' }, { actor: 'test' });
    const s1 = await startSignIn(f);
    expect((await postToAcs(f, await idpAnswer(f, s1, { nameId: 'x', attributes: { email: 'dave@example.com' } }))).status).toBe(303);
    await f.keys.provisionUser({ userName: 'dave2', email: 'dave@example.com' }, { actor: 'test' });
    const s2 = await startSignIn(f);
    expect((await postToAcs(f, await idpAnswer(f, s2, { nameId: 'x', attributes: { email: 'dave@example.com' } }))).status).toBe(403);
  });

  test('clock skew is configurable: 30 s past NotOnOrAfter passes with the default 60 s, fails with 0', async () => {
    f = await createAuthFixture('sqlite');
    await f.keys.provisionUser({ userName: 'gina@example.com' }, { actor: 'test' });
    const s1 = await startSignIn(f);
    expect((await postToAcs(f, await idpAnswer(f, s1, { nameId: 'gina@example.com' }, { notBeforeSec: -300, notOnOrAfterSec: -30 }))).status).toBe(303);
    await f.cleanupAll();
    f = await createAuthFixture('sqlite', { CS_SAML_CLOCK_SKEW_MS: '0' });
    await f.keys.provisionUser({ userName: 'gina@example.com' }, { actor: 'test' });
    const s2 = await startSignIn(f);
    expect((await postToAcs(f, await idpAnswer(f, s2, { nameId: 'gina@example.com' }, { notBeforeSec: -300, notOnOrAfterSec: -30 }))).status).toBe(403);
  });

  test('unsolicited responses, when allowed, still cannot hand out a code', async () => {
    f = await createAuthFixture('sqlite', { CS_SAML_ALLOW_UNSOLICITED: 'true' });
    await f.keys.provisionUser({ userName: 'erin@example.com' }, { actor: 'test' });
    const started = await startSignIn(f);
    const res = await postToAcs(f, await idpAnswer(f, started, { nameId: 'erin@example.com' }, { inResponseTo: null }));
    expect(res.status).toBe(403);
    expect(res.text).toMatch(/not started by an application/);
  });
});
