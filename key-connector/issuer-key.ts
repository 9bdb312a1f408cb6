import type { KeyObject } from 'node:crypto';
import { jwtVerify, type JWTPayload } from 'jose';
import { CLOCK_TOLERANCE_S, callerFrom, refusal, type VerifiedCaller } from './oidc';

/**
 * Verifies tokens of an identity server that publishes no discovery document or JWKS — Vaultwarden
 * (src/auth.rs: RS256 with its data/rsa_key.pem, `iss` = `<DOMAIN origin>|login`): the signature
 * against the one public key the administrator configured (RS256 only: never `none`, never HMAC
 * keyed with that key), `iss` compared exactly, then the same claim checks as OidcVerifier.
 */
export class IssuerKeyVerifier {
  constructor(
    private readonly issuer: string,
    private readonly publicKey: KeyObject,
  ) {}

  async verify(token: string): Promise<VerifiedCaller> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.publicKey, { issuer: this.issuer, algorithms: ['RS256'], clockTolerance: CLOCK_TOLERANCE_S, requiredClaims: ['exp'] }));
    } catch (err) {
      throw refusal(err);
    }
    return callerFrom(payload);
  }
}
