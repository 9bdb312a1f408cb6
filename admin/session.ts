import { randomBytes, timingSafeEqual } from 'node:crypto';
import { jwtVerify, SignJWT, decodeProtectedHeader } from 'jose';
import type { SigningKeyService } from '../server/auth/signing-keys';
import { TOKEN_ALG } from '../server/auth/tokens';

/**
 * Console sessions: a signed cookie (ES256 JWT with the server's access-token signing key, its
 * private half wrapped by the KMS), so no session table and any replica can check it. It has its
 * own `typ` and audience, so it is never accepted as an access token and vice versa. It carries
 * a random CSRF token that every POST form must echo. Never renewed: expiry means a new sign-in.
 * Sign out revokes the session's jti in the database, so a copied cookie dies with it everywhere.
 */
export const SESSION_COOKIE = 'cs_admin';
/** Binds a sign-in to the browser that started it (login CSRF): its digest travels as the PKCE challenge. */
export const SIGN_IN_COOKIE = 'cs_admin_signin';
export const SESSION_TYP = 'cs-admin-session+jwt';

export interface AdminSession {
  userId: string;
  /** Admin granted by the SAML attribute at sign-in (the group is checked again on every request). */
  byAttribute: boolean;
  csrf: string;
  expiresAt: number;
  /** The session's id: Sign out revokes it (admin/session-revocations.ts); a new token is shown to it only. */
  jti: string;
}

export interface SessionOptions {
  issuer: string;
  audience: string;
  minutes: number;
}

export async function mintSession(keys: SigningKeyService, o: SessionOptions, s: { userId: string; byAttribute: boolean }, ctx: { actor: string; requestId?: string }): Promise<{ token: string; session: AdminSession }> {
  const key = await keys.signingKey(ctx);
  const csrf = randomBytes(24).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const exp = now + o.minutes * 60;
  const jti = randomBytes(12).toString('hex');
  const token = await new SignJWT({ attr: s.byAttribute, csrf })
    .setProtectedHeader({ alg: TOKEN_ALG, typ: SESSION_TYP, kid: key.kid })
    .setIssuer(o.issuer)
    .setAudience(o.audience)
    .setSubject(s.userId)
    .setIssuedAt(now)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(key.privateKey);
  return { token, session: { userId: s.userId, byAttribute: s.byAttribute, csrf, expiresAt: exp * 1000, jti } };
}

/** The session the cookie holds, or why it is refused. */
export async function readSession(keys: SigningKeyService, o: SessionOptions, token: string | undefined, now: Date = new Date()): Promise<{ session: AdminSession } | { refused: string }> {
  if (!token) return { refused: 'no session' };
  try {
    const header = decodeProtectedHeader(token);
    if (header.typ !== SESSION_TYP || header.alg !== TOKEN_ALG || typeof header.kid !== 'string') return { refused: 'not a console session' };
    const key = await keys.verificationKey(header.kid);
    if (!key) return { refused: 'signed by an unknown key' };
    const { payload } = await jwtVerify(token, key, { algorithms: [TOKEN_ALG], typ: SESSION_TYP, issuer: o.issuer, audience: o.audience, currentDate: now, requiredClaims: ['sub', 'exp', 'csrf', 'jti'] });
    if (typeof payload.csrf !== 'string' || typeof payload.sub !== 'string' || typeof payload.jti !== 'string') return { refused: 'malformed session' };
    return { session: { userId: payload.sub, byAttribute: payload.attr === true, csrf: payload.csrf, expiresAt: payload.exp! * 1000, jti: payload.jti } };
  } catch (err) {
    const code = (err as { code?: string }).code;
    return { refused: code === 'ERR_JWT_EXPIRED' ? 'session expired' : 'invalid session' };
  }
}

export function csrfMatches(session: AdminSession, given: unknown): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

/** Cookie attributes: HttpOnly, path /admin, Secure behind https; `sameSite` Strict for the session. */
export function cookie(name: string, value: string, o: { maxAgeSeconds: number; secure: boolean; sameSite: 'Strict' | 'Lax' }): string {
  return `${name}=${encodeURIComponent(value)}; Path=/admin; HttpOnly; SameSite=${o.sameSite}; Max-Age=${o.maxAgeSeconds}${o.secure ? '; Secure' : ''}`;
}
