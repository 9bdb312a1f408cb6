import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import { ServiceUnavailableError } from '../server/errors';
import { InvalidTokenError as AuthInvalidTokenError } from '../server/auth/errors';

/** Asymmetric algorithms only: never `none`, never HMAC (an HS256 token keyed with the public key). */
const ASYMMETRIC = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']);
/** A Bitwarden user id (the token's `sub`, Key Connector's UserKeys.Id). */
export const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const LOOPBACK = /^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?\//;
const DISCOVERY_TIMEOUT_MS = 5000;
/** At most one JWKS refetch per this interval for unknown kids (a flood of forged kids cannot hammer the issuer). */
const JWKS_COOLDOWN_MS = 5000;
/** Tolerance for clocks that differ between the identity server and this one. */
export const CLOCK_TOLERANCE_S = 60;

/** A token the identity server signed and that grants the Key Connector API, with its user. */
export interface VerifiedCaller {
  /** The identity server's user id, lower case. */
  sub: string;
  /** The token's `email` claim, lower case, when present (for the optional SCIM link). */
  email?: string;
}

/** A refused token (the app's invalid_token error): `reason` is a stable, non-secret code for the audit trail. */
export class InvalidTokenError extends AuthInvalidTokenError {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(`the bearer token is not accepted: ${message}`);
  }
}

interface Discovered {
  issuer: string;
  jwks: ReturnType<typeof createRemoteJWKSet>;
  algorithms: string[];
}

/**
 * Verifies Bitwarden / Vaultwarden identity-server access tokens as Key Connector does: signature
 * against the issuer's JWKS from its OpenID discovery document (keys cached; an unknown `kid`
 * refetches them), issuer and lifetime checked, no audience check, `scope` containing `api` and
 * `amr` containing `Application` or `external`, `sub` a GUID.
 */
export class OidcVerifier {
  private discovered: Promise<Discovered> | undefined;

  constructor(private readonly issuer: string) {}

  async verify(token: string): Promise<VerifiedCaller> {
    const d = await this.discover();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, d.jwks, { issuer: d.issuer, algorithms: d.algorithms, clockTolerance: CLOCK_TOLERANCE_S, requiredClaims: ['exp'] }));
    } catch (err) {
      throw refusal(err);
    }
    return callerFrom(payload);
  }

  /** The discovery document, fetched once; a failed fetch is retried by the next request. */
  private discover(): Promise<Discovered> {
    this.discovered ??= this.fetchDiscovery().catch((err: unknown) => {
      this.discovered = undefined;
      throw err;
    });
    return this.discovered;
  }

  private async fetchDiscovery(): Promise<Discovered> {
    const url = `${this.issuer}/.well-known/openid-configuration`;
    let doc: { issuer?: unknown; jwks_uri?: unknown; id_token_signing_alg_values_supported?: unknown };
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(DISCOVERY_TIMEOUT_MS), headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      doc = (await res.json()) as typeof doc;
    } catch (err) {
      throw new ServiceUnavailableError('the identity server cannot be reached to verify tokens; retry later', { internalDetail: `${url}: ${(err as Error).message}`, retryAfter: 5 });
    }
    const issuer = typeof doc.issuer === 'string' ? doc.issuer : '';
    const jwksUri = typeof doc.jwks_uri === 'string' ? doc.jwks_uri : '';
    // OpenID Connect Discovery §4.3: the document's issuer must be the one it was fetched for.
    if (issuer.replace(/\/+$/, '') !== this.issuer || !(jwksUri.startsWith('https://') || LOOPBACK.test(jwksUri))) {
      throw new ServiceUnavailableError('the identity server\'s discovery document does not match CS_KEY_CONNECTOR_ISSUER', {
        internalDetail: `${url}: issuer ${JSON.stringify(issuer).slice(0, 200)}, jwks_uri ${JSON.stringify(jwksUri).slice(0, 200)}`,
      });
    }
    const advertised = Array.isArray(doc.id_token_signing_alg_values_supported) ? doc.id_token_signing_alg_values_supported : [];
    const algorithms = [...new Set(['RS256', ...advertised.filter((a): a is string => typeof a === 'string' && ASYMMETRIC.has(a))])];
    return { issuer, jwks: createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: DISCOVERY_TIMEOUT_MS, cooldownDuration: JWKS_COOLDOWN_MS }), algorithms };
  }
}

/** The claim checks every accepted token passes, whoever verified its signature. */
export function callerFrom(payload: JWTPayload): VerifiedCaller {
  if (!includes(payload.scope, 'api')) throw new InvalidTokenError('scope', 'scope must include "api"');
  if (!includes(payload.amr, 'Application') && !includes(payload.amr, 'external')) throw new InvalidTokenError('amr', 'amr must include "Application" or "external"');
  if (typeof payload.sub !== 'string' || !GUID.test(payload.sub)) throw new InvalidTokenError('sub', 'sub must be the user id (a GUID)');
  return { sub: payload.sub.toLowerCase(), email: typeof payload.email === 'string' && payload.email.length <= 320 ? payload.email.toLowerCase() : undefined };
}

function includes(claim: unknown, value: string): boolean {
  if (Array.isArray(claim)) return claim.includes(value);
  // RFC 9068 / RFC 8693 form: one space-separated string.
  return typeof claim === 'string' && claim.split(' ').includes(value);
}

export function refusal(err: unknown): Error {
  if (err instanceof errors.JWTExpired) return new InvalidTokenError('expired', 'it has expired');
  if (err instanceof errors.JWTClaimValidationFailed) return new InvalidTokenError(`claim_${err.claim}`.slice(0, 40), `claim "${err.claim}" is not valid`);
  if (err instanceof errors.JOSEAlgNotAllowed) return new InvalidTokenError('algorithm', 'its signing algorithm is not allowed');
  if (err instanceof errors.JWKSNoMatchingKey) return new InvalidTokenError('unknown_key', 'it is not signed by a key of the identity server');
  if (err instanceof errors.JWSSignatureVerificationFailed) return new InvalidTokenError('signature', 'its signature does not verify');
  if (err instanceof errors.JWKSTimeout || (err instanceof Error && err.name === 'JWKSTimeout')) {
    return new ServiceUnavailableError('the identity server cannot be reached to verify tokens; retry later', { retryAfter: 5 });
  }
  if (err instanceof errors.JOSEError) return new InvalidTokenError('malformed', 'it is not a valid signed JWT');
  // JWKS fetch failures (network) surface as plain errors.
  return new ServiceUnavailableError('the identity server cannot be reached to verify tokens; retry later', { internalDetail: (err as Error)?.message, retryAfter: 5 });
}
