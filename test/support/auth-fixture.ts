import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { s256Challenge } from '../../server/auth/pkce';
import { makeKeyAndCert, type KeyAndCert } from './certs';
import { createTestContext, type TestContext } from './context';
import type { DatabaseName } from './databases';
import { TestIdp, type IdpUser, type ParsedAuthnRequest, type ResponseOptions } from './saml-idp';

/**
 * A Crypto Server app on a fresh database with SAML pointed at a test IdP, two registered clients
 * (a web app with an https redirect and a desktop app with a loopback redirect), and helpers that
 * walk the sign-in exactly as a client and a browser would.
 */
export const PUBLIC_URL = 'http://127.0.0.1:8080';
export const ACS_URL = `${PUBLIC_URL}/auth/saml/acs`;
export const SP_ENTITY_ID = `${PUBLIC_URL}/auth/saml/metadata`;
export const WEB = { clientId: 'web', redirectUri: 'https://app.example.com/callback' };
export const DESKTOP = { clientId: 'desktop', redirectUri: 'http://127.0.0.1/callback' };

export interface AuthFixture extends TestContext {
  idp: TestIdp;
  sp: KeyAndCert;
  /** An IdP certificate configured as well (rollover: the next certificate). */
  nextIdpKeys: KeyAndCert;
  cleanupAll: () => Promise<void>;
}

export async function createAuthFixture(kind: DatabaseName, env: Record<string, string> = {}, opts: { idp?: TestIdp } = {}): Promise<AuthFixture> {
  const idp = opts.idp ?? (await TestIdp.start({ spEntityId: SP_ENTITY_ID }));
  const dir = mkdtempSync(join(tmpdir(), 'cs-sp-'));
  const sp = makeKeyAndCert('crypto-server-sp');
  const nextIdpKeys = makeKeyAndCert('test-idp-next');
  writeFileSync(join(dir, 'sp.key'), sp.key, { mode: 0o600 });
  writeFileSync(join(dir, 'sp.crt'), sp.cert);
  try {
    const ctx = await createTestContext(kind, {
      CS_PUBLIC_URL: PUBLIC_URL,
      CS_SAML_IDP_SSO_URL: idp.ssoUrl,
      CS_SAML_IDP_ENTITY_ID: idp.entityId,
      CS_SAML_IDP_CERTS: `${idp.cert},${nextIdpKeys.cert}`,
      CS_SAML_SP_KEY_FILE: join(dir, 'sp.key'),
      CS_SAML_SP_CERT_FILE: join(dir, 'sp.crt'),
      CS_CLIENTS: JSON.stringify([
        { clientId: WEB.clientId, redirectUris: [WEB.redirectUri] },
        { clientId: DESKTOP.clientId, redirectUris: [DESKTOP.redirectUri] },
      ]),
      CS_CORS_ORIGINS: 'https://app.example.com',
      ...env,
    });
    return {
      ...ctx,
      idp,
      sp,
      nextIdpKeys,
      cleanupAll: async () => {
        await ctx.cleanup();
        if (!opts.idp) await idp.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (!opts.idp) await idp.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

export function newVerifier(): string {
  return randomBytes(32).toString('base64url');
}

export interface Started {
  request: ParsedAuthnRequest;
  verifier: string;
  state: string;
  redirectUri: string;
  clientId: string;
}

/** GET /oauth/authorize → the AuthnRequest the browser would carry to the IdP. */
export async function startSignIn(f: AuthFixture, client: { clientId: string; redirectUri: string } = WEB): Promise<Started> {
  const verifier = newVerifier();
  const state = randomBytes(8).toString('hex');
  const res = await request(f.app).get('/oauth/authorize').query({
    response_type: 'code',
    client_id: client.clientId,
    redirect_uri: client.redirectUri,
    code_challenge: s256Challenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  if (res.status !== 302) throw new Error(`authorize answered ${res.status}: ${res.text}`);
  const location = String(res.headers.location);
  if (!location.startsWith(f.idp.ssoUrl)) throw new Error(`authorize redirected elsewhere: ${location}`);
  const { request: req } = TestIdp.parseRedirect(location);
  return { request: req, verifier, state, redirectUri: client.redirectUri, clientId: client.clientId };
}

/** POST the IdP's answer to the assertion consumer, as the browser's auto-submitted form does. */
export function postToAcs(f: AuthFixture, samlResponse: string) {
  return request(f.app).post('/auth/saml/acs').type('form').send({ SAMLResponse: samlResponse });
}

export async function idpAnswer(f: AuthFixture, started: Started, user: IdpUser, overrides: Partial<ResponseOptions> = {}): Promise<string> {
  return f.idp.respond(started.request, user, overrides);
}

/** The whole sign-in: authorize, IdP, ACS; returns the code from the client redirect. */
export async function signInForCode(f: AuthFixture, user: IdpUser, client = WEB): Promise<{ code: string; started: Started }> {
  const started = await startSignIn(f, client);
  const res = await postToAcs(f, await idpAnswer(f, started, user));
  if (res.status !== 303) throw new Error(`ACS answered ${res.status}: ${res.text}`);
  const loc = new URL(String(res.headers.location));
  const code = loc.searchParams.get('code');
  if (!code) throw new Error(`no code in ${loc}`);
  return { code, started };
}

export function redeem(f: AuthFixture, fields: Record<string, string>) {
  return request(f.app).post('/oauth/token').type('form').send(fields);
}

/** Signs in and redeems the code; returns the access token. */
export async function signInForToken(f: AuthFixture, user: IdpUser, client = WEB): Promise<string> {
  const { code, started } = await signInForCode(f, user, client);
  const res = await redeem(f, { grant_type: 'authorization_code', code, redirect_uri: started.redirectUri, client_id: client.clientId, code_verifier: started.verifier });
  if (res.status !== 200) throw new Error(`token endpoint answered ${res.status}: ${res.text}`);
  return res.body.access_token as string;
}

/** A provisioned user signed in through the real flow: its id, wrapped password key and access token. */
export async function signedInUser(f: AuthFixture, userName: string): Promise<{ id: string; wrappedPasswordKey: string; token: string }> {
  const u = await f.keys.provisionUser({ userName }, { actor: 'test' });
  return { id: u.id, wrappedPasswordKey: u.keys.wrappedPasswordKey, token: await signInForToken(f, { nameId: userName }) };
}

/** Audit events of an action, newest first. */
export async function auditOf(f: AuthFixture, action: string) {
  return f.store.repos.audit.recent(500, { action });
}
