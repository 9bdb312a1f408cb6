import { randomUUID } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT, type CryptoKey, type JWTPayload, type KeyObject } from 'jose';
import { InvalidTokenError } from './errors';

/**
 * Access tokens: short-lived JWTs (RFC 9068 profile, typ "at+jwt") signed with ES256 by the
 * current token-signing key. Verification pins the algorithm, issuer, audience and type and
 * resolves the key by `kid` among our own published keys only — never from the token itself
 * (no jku/x5u/jwk header is honoured), and `alg: none` never verifies.
 */
export const TOKEN_ALG = 'ES256';
export const ACCESS_TOKEN_TYP = 'at+jwt';

export type VerificationKey = CryptoKey | KeyObject;

export interface AccessTokenClaims {
  sub: string;
  client_id: string;
  iss: string;
  aud: string;
  iat: number;
  exp: number;
  jti: string;
}

export interface SignInput {
  kid: string;
  privateKey: CryptoKey | KeyObject;
  userId: string;
  clientId: string;
  issuer: string;
  audience: string;
  ttlSeconds: number;
  /** Seconds since the epoch (tests pass a fixed clock). */
  now?: number;
}

export async function signAccessToken(input: SignInput): Promise<{ token: string; expiresIn: number; jti: string }> {
  const iat = input.now ?? Math.floor(Date.now() / 1000);
  const jti = randomUUID();
  const token = await new SignJWT({ client_id: input.clientId })
    .setProtectedHeader({ alg: TOKEN_ALG, typ: ACCESS_TOKEN_TYP, kid: input.kid })
    .setSubject(input.userId)
    .setIssuer(input.issuer)
    .setAudience(input.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + input.ttlSeconds)
    .setJti(jti)
    .sign(input.privateKey);
  return { token, expiresIn: input.ttlSeconds, jti };
}

export interface VerifyInput {
  issuer: string;
  audience: string;
  /** Our published verification key for `kid`, or undefined when we have none. */
  resolveKey(kid: string): Promise<VerificationKey | undefined>;
  clockToleranceSeconds?: number;
  /** Seconds since the epoch. */
  now?: number;
  /** Tokens this process has verified already (skips the signature check on a repeat). */
  cache?: VerifiedTokenCache;
}

interface Verified {
  claims: AccessTokenClaims;
  kid: string;
  key: VerificationKey;
}

/**
 * Access tokens whose signature and claims this process has verified, keyed by the whole compact
 * token (issue 10: ES256 verification per call was the largest cost of the key API after the ORM).
 * A hit is honoured only while the token is unexpired and its `kid` still resolves to the same
 * published key, so a key withdrawn from the JWKS ends its tokens as it would without the cache.
 * It holds nothing about the user: whether the user is active is read from the database per call.
 * Bounded: the oldest entries go first.
 */
export class VerifiedTokenCache {
  private readonly entries = new Map<string, Verified>();

  constructor(private readonly max = 10_000) {}

  /** The claims of a token verified before, if it is still valid at `now` (seconds). */
  async lookup(token: string, opts: VerifyInput, now: number): Promise<AccessTokenClaims | undefined> {
    const hit = this.entries.get(token);
    if (!hit) return undefined;
    if (hit.claims.exp <= now - (opts.clockToleranceSeconds ?? 5) || (await opts.resolveKey(hit.kid)) !== hit.key) {
      this.entries.delete(token);
      return undefined;
    }
    return hit.claims;
  }

  remember(token: string, v: Verified): void {
    this.entries.set(token, v);
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Reads the token from an `Authorization: Bearer <jwt>` header value. */
export function bearerToken(header: unknown): string {
  if (typeof header !== 'string' || header.length === 0) throw new InvalidTokenError('an access token is required (Authorization: Bearer <token>)');
  // The scheme is case-insensitive and followed by 1*SP (RFC 7235 §2.1, RFC 6750 §2.1).
  const m = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/i.exec(header);
  if (!m) throw new InvalidTokenError('the Authorization header must be "Bearer <token>" with a compact JWT');
  return m[1];
}

export async function verifyAccessToken(token: string, opts: VerifyInput): Promise<AccessTokenClaims> {
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const cached = await opts.cache?.lookup(token, opts, now);
  if (cached) return cached;
  let used: { kid: string; key: VerificationKey } | undefined;
  try {
    const { payload } = await jwtVerify(
      token,
      async (header) => {
        if (header.alg !== TOKEN_ALG) throw new InvalidTokenError(`token algorithm "${String(header.alg)}" is not accepted`);
        if (typeof header.kid !== 'string') throw new InvalidTokenError('token names no signing key (kid)');
        const key = await opts.resolveKey(header.kid);
        if (!key) throw new InvalidTokenError('token is signed with a key this server does not publish');
        used = { kid: header.kid, key };
        return key;
      },
      {
        algorithms: [TOKEN_ALG],
        issuer: opts.issuer,
        audience: opts.audience,
        typ: ACCESS_TOKEN_TYP,
        clockTolerance: opts.clockToleranceSeconds ?? 5,
        requiredClaims: ['sub', 'iat', 'exp', 'jti', 'client_id'],
        currentDate: opts.now === undefined ? undefined : new Date(opts.now * 1000),
      },
    );
    const claims = claimsOf(payload);
    if (opts.cache && used) opts.cache.remember(token, { claims, ...used });
    return claims;
  } catch (err) {
    throw asTokenError(err);
  }
}

function claimsOf(p: JWTPayload): AccessTokenClaims {
  if (typeof p.sub !== 'string' || typeof p.client_id !== 'string' || typeof p.jti !== 'string' || typeof p.aud !== 'string') {
    throw new InvalidTokenError('token claims are malformed');
  }
  return { sub: p.sub, client_id: p.client_id, iss: p.iss!, aud: p.aud, iat: p.iat!, exp: p.exp!, jti: p.jti };
}

function asTokenError(err: unknown): InvalidTokenError {
  if (err instanceof InvalidTokenError) return err;
  if (err instanceof joseErrors.JWTExpired) return new InvalidTokenError('token has expired', err.message);
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return new InvalidTokenError('token is for another audience', err.message);
    if (err.claim === 'iss') return new InvalidTokenError('token is from another issuer', err.message);
    if (err.claim === 'typ') return new InvalidTokenError('token is not an access token (typ at+jwt)', err.message);
    return new InvalidTokenError(`token claim "${err.claim}" is invalid`, err.message);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new InvalidTokenError('token signature does not verify', err.message);
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new InvalidTokenError('token algorithm is not accepted', err.message);
  if (err instanceof joseErrors.JOSEError) return new InvalidTokenError('token is malformed', `${err.code}: ${err.message}`);
  return new InvalidTokenError('token is malformed', err instanceof Error ? err.message : String(err));
}
