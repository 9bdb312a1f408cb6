import { randomBytes } from 'node:crypto';
import { s256Challenge } from '../../../server/auth/pkce';
import { TestIdp } from '../../support/saml-idp';
import { BENCH_CLIENT, type RunningServer } from './crypto-server';

/**
 * A real sign-in against the server process, over HTTP, as a desktop client and its browser would
 * walk it: /oauth/authorize → the IdP's SAML response posted to the ACS → the code on the loopback
 * redirect → /oauth/token with the PKCE verifier. Returns the access token.
 */
export async function signIn(server: RunningServer, nameId: string): Promise<string> {
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(8).toString('hex');
  const authorize = new URL('/oauth/authorize', server.url);
  for (const [k, v] of Object.entries({ response_type: 'code', client_id: BENCH_CLIENT.clientId, redirect_uri: BENCH_CLIENT.redirectUri, code_challenge: s256Challenge(verifier), code_challenge_method: 'S256', state })) {
    authorize.searchParams.set(k, v);
  }
  const toIdp = await fetch(authorize, { redirect: 'manual' });
  const idpUrl = toIdp.headers.get('location');
  if (toIdp.status !== 302 || !idpUrl?.startsWith(server.idp.ssoUrl)) throw new Error(`authorize answered ${toIdp.status} → ${idpUrl}: ${await toIdp.text()}`);
  const { request, relayState } = TestIdp.parseRedirect(idpUrl);

  const form = new URLSearchParams({ SAMLResponse: await server.idp.respond(request, { nameId }) });
  if (relayState !== undefined) form.set('RelayState', relayState);
  const acs = await fetch(new URL('/auth/saml/acs', server.url), { method: 'POST', body: form, redirect: 'manual' });
  const back = acs.headers.get('location');
  if (acs.status !== 303 || !back) throw new Error(`ACS answered ${acs.status}: ${await acs.text()}`);
  const redirect = new URL(back);
  const code = redirect.searchParams.get('code');
  if (!code || redirect.searchParams.get('state') !== state) throw new Error(`sign-in redirect carried no code or another state: ${back}`);

  const tokenRes = await fetch(new URL('/oauth/token', server.url), {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: BENCH_CLIENT.redirectUri, client_id: BENCH_CLIENT.clientId, code_verifier: verifier }),
  });
  const body = (await tokenRes.json()) as { access_token?: string };
  if (tokenRes.status !== 200 || !body.access_token) throw new Error(`token endpoint answered ${tokenRes.status}: ${JSON.stringify(body)}`);
  return body.access_token;
}
