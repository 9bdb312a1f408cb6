import type { Profile } from '@node-saml/node-saml';
import type { AuthConfig, ClientRegistration } from '../config/auth';
import type { Store } from '../repositories/store';
import type { UserRow } from '../../entities';
import type { OpContext } from '../keys/types';
import { AppError, asAppError } from '../errors';
import { InvalidTokenError, OAuthError, SamlRefusedError, UnknownUserError } from './errors';
import { codeDigest, isValidCodeChallenge, newAuthorizationCode, redirectUriMatches, verifyPkce } from './pkce';
import { responseProblem } from './saml-checks';
import type { PendingSignIn } from './saml-request-cache';
import type { SigningKeyService } from './signing-keys';
import { bearerToken, signAccessToken, verifyAccessToken, VerifiedTokenCache, type AccessTokenClaims } from './tokens';
import { RefusalBound } from '../audit/refusal-bound';

/**
 * Sign-in as a service (no HTTP here): checks authorize requests, completes a SAML sign-in into a
 * one-time authorization code, redeems codes for access tokens, and authenticates Bearer tokens.
 * Every refusal writes an audit event before it is thrown.
 */
export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
}

/** An authorize request refused before its redirect URI could be trusted: answered with a page, never a redirect. */
export class AuthorizeRefusedError extends OAuthError {}

const MAX_STATE = 512;

/**
 * Just-in-time provisioning (CS_JIT_PROVISIONING, backend/jit.ts): creates the user a sign-in named
 * when none matches; returns it, or null to refuse the sign-in as before.
 */
export type JitProvisioner = (profile: Profile, matched: { value: string }, ctx: OpContext) => Promise<UserRow | null>;

export class SignInService {
  private readonly clients: ReadonlyMap<string, ClientRegistration>;
  private lastPurge = 0;
  /** Set when CS_JIT_PROVISIONING is on. */
  jit?: JitProvisioner;
  /**
   * Set by the console (admin/): its sign-ins carry this client id. Assertion attributes reach no
   * further than this service, so an admin grant by attribute is marked on the code's client id.
   */
  adminSignIn?: { clientId: string; grantedByAttribute(profile: Profile): boolean };
  /** Signature checks already done in this process; the user's state is still read per call. */
  private readonly verifiedTokens = new VerifiedTokenCache();

  constructor(
    private readonly store: Store,
    private readonly signingKeys: SigningKeyService,
    private readonly config: AuthConfig,
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.clients = new Map(config.clients.map((c) => [c.clientId, c]));
  }

  // ---- step 1: /oauth/authorize -------------------------------------------------------------

  /**
   * Validates an authorize request. Client and redirect URI are checked first; until both are
   * known good, every refusal is an AuthorizeRefusedError (a page, no redirect: no open redirector).
   * After that, refusals become an error redirect to the client (RFC 6749 §4.1.2.1).
   */
  async checkAuthorize(q: Record<string, unknown>, ctx: OpContext): Promise<{ pending: PendingSignIn } | { errorRedirect: string }> {
    const clientId = typeof q.client_id === 'string' ? q.client_id : undefined;
    const client = clientId ? this.clients.get(clientId) : undefined;
    if (!client) {
      return this.refuse(ctx, 'oauth.authorize', new AuthorizeRefusedError('invalid_client', 'unknown client_id; the application is not registered with Crypto Server'), { client: clientId ?? '' });
    }
    if (!redirectUriMatches(client.redirectUris, q.redirect_uri)) {
      return this.refuse(ctx, 'oauth.authorize', new AuthorizeRefusedError('invalid_request', 'redirect_uri is not registered for this client'), { client: client.clientId });
    }
    const redirectUri = q.redirect_uri;
    const state = typeof q.state === 'string' ? q.state : undefined;
    const fail = async (code: OAuthError['code'], description: string) => {
      await this.audit(ctx, 'oauth.authorize', 'refused', { client: client.clientId, error: code });
      return { errorRedirect: withParams(redirectUri, { error: code, error_description: description, state, iss: this.config.tokens.issuer }) };
    };
    if (q.response_type !== 'code') return fail('unsupported_response_type', 'response_type must be "code"');
    if (q.code_challenge_method !== 'S256') return fail('invalid_request', 'code_challenge_method must be S256 (PKCE is required)');
    if (!isValidCodeChallenge(q.code_challenge)) return fail('invalid_request', 'code_challenge must be the base64url SHA-256 of the code verifier (43 characters)');
    if (state !== undefined && state.length > MAX_STATE) return fail('invalid_request', `state must be at most ${MAX_STATE} characters`);
    if (q.scope !== undefined && typeof q.scope !== 'string') return fail('invalid_scope', 'scope must be a string');
    return { pending: { clientId: client.clientId, redirectUri, codeChallenge: q.code_challenge, state } };
  }

  // ---- step 2: the SAML response was accepted by node-saml ----------------------------------

  /**
   * Completes a sign-in. Returns the client redirect carrying a one-time code. `idpEntityId` is the
   * IdP's entity ID as configured or read from its metadata; the assertion's Issuer must match it.
   */
  async completeSignIn(profile: Profile, ctx: OpContext, idpEntityId: string | undefined): Promise<string> {
    const saml = this.config.saml;
    const inResponseTo = typeof profile.inResponseTo === 'string' ? profile.inResponseTo : undefined;
    const subject = String(profile.nameID ?? '').slice(0, 255);
    const audit = { nameId: subject };

    if (!inResponseTo) {
      // node-saml only lets this through with CS_SAML_ALLOW_UNSOLICITED=true; there is still no
      // client waiting for a code, so the person is told to start from their application.
      return this.refuse(ctx, 'saml.login', new SamlRefusedError('this sign-in was not started by an application; open your application and sign in from there'), { ...audit, reason: 'unsolicited' });
    }
    const problem = responseProblem(profile.getSamlResponseXml?.() ?? '', profile.getAssertionXml?.() ?? '', {
      acsUrl: saml.acsUrl,
      idpEntityId,
      inResponseTo,
    });
    if (problem) return this.refuse(ctx, 'saml.login', new SamlRefusedError(`the identity provider's answer was refused: ${problem}`), { ...audit, reason: problem });

    const consumed = await this.store.writeNow((t) => t.samlRequests.consume(inResponseTo, this.clock()));
    if (!consumed.ok) {
      const why = consumed.reason === 'replayed' ? 'this sign-in response was already used' : consumed.reason === 'expired' ? 'the sign-in took too long; start again' : 'this server did not start this sign-in';
      return this.refuse(ctx, 'saml.login', new SamlRefusedError(why), { ...audit, reason: consumed.reason });
    }
    const pending = consumed.record.pending;

    let user = await this.findUser(profile);
    if (!user.ok && user.reason === 'no provisioned user matches' && this.jit && user.value) {
      const created = await this.jit(profile, { value: user.value }, ctx);
      if (created) user = { ok: true, user: created };
    }
    if (!user.ok) {
      // The operator log says what the IdP sent: a transient or otherwise unexpected NameID format
      // is the usual cause of "not provisioned" for a user SCIM did provision.
      const format = typeof profile.nameIDFormat === 'string' ? profile.nameIDFormat.slice(0, 200) : 'none';
      const matched = saml.userAttribute === 'nameid' ? '' : `; ${user.attribute} ${user.value === undefined ? 'absent' : `"${user.value.slice(0, 255)}"`}`;
      const detail = `${user.reason}: NameID "${subject}" (format ${format})${matched}; users are matched by CS_SAML_USER_ATTRIBUTE=${saml.userAttribute}`;
      return this.refuse(ctx, 'saml.login', new UnknownUserError(detail), { ...audit, nameIdFormat: format, reason: user.reason });
    }

    const code = newAuthorizationCode();
    const now = this.clock();
    await this.store.transaction(async (t) => {
      await t.authCodes.insert({
        codeHash: codeDigest(code),
        clientId: pending.clientId === this.adminSignIn?.clientId && this.adminSignIn.grantedByAttribute(profile) ? `${pending.clientId}+attribute` : pending.clientId,
        redirectUri: pending.redirectUri,
        codeChallenge: pending.codeChallenge,
        userId: user.user.id,
        expiresAt: new Date(now.getTime() + this.config.tokens.codeTtlSeconds * 1000).toISOString(),
        consumedAt: null,
        createdAt: now.toISOString(),
      });
      await t.audit.append({ ...ctx, actor: `user:${user.user.id}`, action: 'saml.login', outcome: 'success', targetType: 'user', targetId: user.user.id, detail: { client: pending.clientId } });
    });
    await this.purgeExpired();
    return withParams(pending.redirectUri, { code, state: pending.state, iss: this.config.tokens.issuer });
  }

  /** Deletes sign-in state that expired over an hour ago; at most every ten minutes per process. */
  private async purgeExpired(): Promise<void> {
    const now = this.clock().getTime();
    if (now - this.lastPurge < 10 * 60_000) return;
    this.lastPurge = now;
    const before = new Date(now - 60 * 60_000);
    try {
      await this.store.writeNow(async (t) => {
        await t.samlRequests.purge(before);
        await t.authCodes.purge(before);
      });
    } catch {
      this.lastPurge = 0; // try again on the next sign-in
    }
  }

  private async findUser(profile: Profile): Promise<{ ok: true; user: UserRow } | { ok: false; reason: string; attribute: string; value?: string }> {
    const { userAttribute, userAttributeName } = this.config.saml;
    const lookup = this.store.repos.users;
    let value: string | undefined;
    let user: UserRow | null = null;
    const attribute = userAttribute === 'nameid' ? 'NameID' : `attribute "${userAttributeName ?? userAttribute}"`;
    if (userAttribute === 'nameid') {
      value = typeof profile.nameID === 'string' ? profile.nameID : undefined;
      if (value) user = await lookup.findByUserName(value);
    } else {
      const name = userAttributeName ?? userAttribute;
      value = attributeValue(profile, name) ?? (userAttribute === 'email' && !userAttributeName ? attributeValue(profile, 'mail') ?? stringOf(profile.email) : undefined);
      if (value && userAttribute === 'userName') user = await lookup.findByUserName(value);
      if (value && userAttribute === 'externalId') user = await lookup.findByExternalId(value);
      if (value && userAttribute === 'email') {
        const found = await lookup.findByEmail(value);
        if (found.length > 1) return { ok: false, reason: 'email matches more than one user', attribute, value };
        user = found[0] ?? null;
      }
    }
    if (!value) return { ok: false, reason: `the assertion carries no ${userAttribute === 'nameid' ? 'NameID' : `"${userAttributeName ?? userAttribute}" attribute`}`, attribute };
    if (!user) return { ok: false, reason: 'no provisioned user matches', attribute, value };
    if (user.deletedAt) return { ok: false, reason: 'user is deleted', attribute, value };
    if (!user.active) return { ok: false, reason: 'user is deactivated', attribute, value };
    return { ok: true, user };
  }

  // ---- step 3: /oauth/token -----------------------------------------------------------------

  /**
   * `origin` is the request's Origin header: browsers always send it on cross-origin POSTs, so a
   * page on an origin that is not on the CORS allow-list is refused here, before the code is
   * spent (CORS alone would only stop it from reading the answer). Native apps send none.
   */
  async redeemCode(body: Record<string, unknown>, ctx: OpContext, origin?: string): Promise<TokenResponse> {
    const clientId = typeof body.client_id === 'string' ? body.client_id.slice(0, 64) : '';
    const fail = (code: OAuthError['code'], message: string, reason: string): Promise<never> =>
      this.refuse(ctx, 'oauth.token', new OAuthError(code, message), { client: clientId, reason });

    if (origin !== undefined && !this.config.cors.origins.includes(origin)) {
      return fail('unauthorized_client', 'token requests from this web origin are not allowed', `origin ${origin.slice(0, 200)} not allowed`);
    }

    if (body.grant_type !== 'authorization_code') return fail('unsupported_grant_type', 'grant_type must be "authorization_code"', 'grant_type');
    if (!this.clients.has(clientId)) return fail('invalid_client', 'unknown client_id', 'client');
    if (typeof body.code !== 'string' || body.code.length === 0 || body.code.length > 128) return fail('invalid_request', 'code is required', 'code missing');
    if (typeof body.redirect_uri !== 'string') return fail('invalid_request', 'redirect_uri is required', 'redirect_uri missing');
    if (typeof body.code_verifier !== 'string') return fail('invalid_request', 'code_verifier is required (PKCE)', 'verifier missing');

    // The key to sign with first: if the KMS cannot open it (an outage answers 503), the code is
    // still unused and the client's retry within the code's lifetime signs the user in.
    const key = await this.signingKeys.signingKey(ctx);
    // The code is used up by this attempt whatever happens next: a wrong verifier burns it.
    const digest = codeDigest(body.code);
    const r = await this.store.writeNow((t) => t.authCodes.redeem(digest, this.clock()));
    if (!r.ok) {
      const message = r.reason === 'reused' ? 'the authorization code was already used' : r.reason === 'expired' ? 'the authorization code has expired' : 'the authorization code is not valid';
      return fail('invalid_grant', message, `code ${r.reason}`);
    }
    const code = r.code;
    if (code.clientId !== clientId) return fail('invalid_grant', 'the authorization code was issued to another client', 'client mismatch');
    if (code.redirectUri !== body.redirect_uri) return fail('invalid_grant', 'redirect_uri does not match the authorize request', 'redirect_uri mismatch');
    if (!verifyPkce(body.code_verifier, code.codeChallenge)) return fail('invalid_grant', 'code_verifier does not match the code_challenge', 'pkce');
    const user = await this.store.repos.users.findById(code.userId);
    if (!user || user.deletedAt || !user.active) return fail('invalid_grant', 'the user is no longer active', 'user inactive');

    const t = this.config.tokens;
    const issued = await signAccessToken({ kid: key.kid, privateKey: key.privateKey, userId: user.id, clientId, issuer: t.issuer, audience: t.audience, ttlSeconds: t.ttlSeconds });
    await this.store.audit({ ...ctx, actor: `user:${user.id}`, action: 'oauth.token', outcome: 'success', targetType: 'user', targetId: user.id, detail: { client: clientId, jti: issued.jti, kid: key.kid } });
    return { access_token: issued.token, token_type: 'Bearer', expires_in: issued.expiresIn };
  }

  // ---- Bearer tokens on the key API ---------------------------------------------------------

  /** `client`: the caller's address, which bounds the audit rows of its refused tokens (anonymous-refusals.ts). */
  async authenticate(authorization: unknown, ctx: OpContext, client?: string): Promise<AccessTokenClaims> {
    try {
      const token = bearerToken(authorization);
      const t = this.config.tokens;
      const claims = await verifyAccessToken(token, {
        issuer: t.issuer,
        audience: t.audience,
        resolveKey: (kid) => this.signingKeys.verificationKey(kid),
        now: Math.floor(this.clock().getTime() / 1000),
        cache: this.verifiedTokens,
      });
      if (!this.clients.has(claims.client_id)) throw new InvalidTokenError('token was issued to a client that is no longer registered');
      return claims;
    } catch (err) {
      const e = asAppError(err) ?? new InvalidTokenError('token is malformed');
      // Nobody authenticated: group-committed and rate-bound, so junk tokens cannot queue the chain lock.
      await anonymousRefusalsOf(this.store).record(`${client ?? '?'}|${e.code}`, { ...ctx, action: 'token.verify', outcome: 'refused', detail: { reason: e.message, error: e.code } });
      throw e;
    }
  }

  // ---- helpers ------------------------------------------------------------------------------

  /** For refusals a route detects before this service sees the request. */
  async recordRefusal(ctx: OpContext, action: string, detail: Record<string, string>): Promise<void> {
    await this.store.audit({ ...ctx, action, outcome: 'refused', detail });
  }

  private async audit(ctx: OpContext, action: string, outcome: 'success' | 'refused', detail: Record<string, string>): Promise<void> {
    await this.store.audit({ ...ctx, action, outcome, detail }).catch(() => undefined);
  }

  private async refuse(ctx: OpContext, action: string, err: AppError, detail: Record<string, string>): Promise<never> {
    await this.store.audit({ ...ctx, action, outcome: 'refused', detail: { ...detail, error: err.code } });
    throw err;
  }
}

/** Audit rows a minute per client address and error code for refused unauthenticated tokens. */
export const ANONYMOUS_ROWS_PER_MINUTE = 10;
const anonymousRefusals = new WeakMap<Store, RefusalBound>();

/** One bound per process and store (several apps on one store share it); a failed write fails the request as before. */
export function anonymousRefusalsOf(store: Store): RefusalBound {
  let a = anonymousRefusals.get(store);
  if (!a) anonymousRefusals.set(store, (a = new RefusalBound(store, { rowsPerMinute: ANONYMOUS_ROWS_PER_MINUTE })));
  return a;
}

function withParams(uri: string, params: Record<string, string | undefined>): string {
  const u = new URL(uri);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v);
  return u.toString();
}

function stringOf(v: unknown): string | undefined {
  if (typeof v === 'string' && v.length > 0) return v;
  if (Array.isArray(v) && v.length === 1 && typeof v[0] === 'string') return v[0];
  return undefined;
}

function attributeValue(profile: Profile, name: string): string | undefined {
  const attrs = (profile.attributes ?? {}) as Record<string, unknown>;
  return stringOf(attrs[name]);
}
