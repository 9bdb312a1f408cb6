import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * PKCE (RFC 7636), S256 only, and redirect-URI matching (RFC 6749 §3.1.2, RFC 8252 §7.3).
 * Pure functions: no I/O, no clock, so each rule is tested on its own.
 */

/** RFC 7636 §4.1: 43..128 characters of [A-Z a-z 0-9 - . _ ~]. */
const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
/** BASE64URL(SHA-256(verifier)) is always 43 characters without padding. */
const CHALLENGE = /^[A-Za-z0-9_-]{43}$/;

export function isValidCodeVerifier(v: unknown): v is string {
  return typeof v === 'string' && VERIFIER.test(v);
}

export function isValidCodeChallenge(c: unknown): c is string {
  return typeof c === 'string' && CHALLENGE.test(c);
}

export function s256Challenge(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** Constant-time check that `verifier` hashes to `challenge`. */
export function verifyPkce(verifier: unknown, challenge: string): boolean {
  if (!isValidCodeVerifier(verifier) || !isValidCodeChallenge(challenge)) return false;
  const a = Buffer.from(s256Challenge(verifier), 'ascii');
  const b = Buffer.from(challenge, 'ascii');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A one-time authorization code (256 bits) and the digest stored in its place. */
export function newAuthorizationCode(): string {
  return randomBytes(32).toString('base64url');
}

/** Codes are stored only as SHA-256 digests, so a database reader cannot redeem them. */
export function codeDigest(code: string): string {
  return createHash('sha256').update(code, 'utf8').digest('base64url');
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

function parse(uri: string): URL | undefined {
  try {
    return new URL(uri);
  } catch {
    return undefined;
  }
}

/** True for http://127.0.0.1, http://[::1] and http://localhost redirect URIs (RFC 8252 §7.3). */
export function isLoopbackRedirect(uri: string): boolean {
  const u = parse(uri);
  return !!u && u.protocol === 'http:' && LOOPBACK_HOSTS.has(u.hostname);
}

/**
 * Checks a redirect URI as it may appear in a client registration: absolute, no fragment, no
 * user info; https, or http only on a loopback host; or a private-use scheme (com.example.app:/cb)
 * for native apps. Returns a reason when it is not acceptable.
 */
export function redirectUriProblem(uri: string): string | undefined {
  const u = parse(uri);
  if (!u) return 'is not an absolute URI';
  if (u.hash || uri.includes('#')) return 'must not contain a fragment';
  if (u.username || u.password) return 'must not contain user information';
  if (u.protocol === 'https:') return undefined;
  if (u.protocol === 'http:') return isLoopbackRedirect(uri) ? undefined : 'uses http on a host other than a loopback address';
  if (/^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+:$/.test(u.protocol)) return undefined; // private-use scheme, reverse-DNS
  if (u.protocol === 'javascript:' || u.protocol === 'data:' || u.protocol === 'file:') return `uses the ${u.protocol} scheme`;
  return 'must be https, http on a loopback address, or a reverse-DNS private-use scheme';
}

/**
 * Does `requested` match one of the client's registered redirect URIs? Exact string comparison,
 * except that for a registered loopback URI any port is accepted (RFC 8252 §7.3): scheme, host,
 * path and query must still be identical.
 */
export function redirectUriMatches(registered: readonly string[], requested: unknown): requested is string {
  if (typeof requested !== 'string' || requested.length === 0 || requested.length > 2048) return false;
  if (registered.includes(requested)) return true;
  if (!isLoopbackRedirect(requested)) return false;
  const r = parse(requested)!;
  if (r.hash || requested.includes('#') || r.username || r.password) return false;
  return registered.some((reg) => {
    if (!isLoopbackRedirect(reg)) return false;
    const g = parse(reg)!;
    return g.protocol === r.protocol && g.hostname === r.hostname && g.pathname === r.pathname && g.search === r.search;
  });
}
