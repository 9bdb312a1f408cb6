import type { Request } from 'express';
import { Passport } from 'passport';
import type { Strategy } from 'passport-strategy';
import { MultiSamlStrategy, type PassportSamlConfig, type VerifiedCallback } from '@node-saml/passport-saml';
import { generateServiceProviderMetadata, ValidateInResponseTo, type Profile } from '@node-saml/node-saml';
import type { AuthConfig } from '../config/auth';
import { parseIdpMetadata } from '../config/auth';
import { ServiceUnavailableError } from '../errors';
import type { SamlRequestCacheStore, PendingSignIn } from './saml-request-cache';
import { RequestScopedSamlCache } from './saml-request-cache';

/**
 * The SAML 2.0 service provider: passport with @node-saml/passport-saml's MultiSamlStrategy, which
 * builds a node-saml instance per request. That lets each request carry its own CacheProvider
 * (request IDs in the database, bound to the pending authorize request) and lets the IdP's
 * metadata be refreshed at run time (certificate rollover) without a restart.
 *
 * Security settings, and why:
 * - wantAssertionsSigned: the assertion itself must carry a valid signature by an IdP certificate
 *   (a signed Response around an unsigned assertion is not enough).
 * - wantAuthnResponseSigned: false — most IdPs sign only the assertion; when the Response is also
 *   signed, node-saml verifies that too.
 * - validateInResponseTo: always (unsolicited responses refused) unless CS_SAML_ALLOW_UNSOLICITED.
 * - audience: the SP entity ID; acceptedClockSkewMs from CS_SAML_CLOCK_SKEW_MS.
 * - identifierFormat: requested (NameIDPolicy) and advertised (metadata) so the IdP sends a NameID
 *   that can identify the user; node-saml does not check the format it receives.
 * - idpCert: every configured certificate (old and new during a rollover).
 * - decryptionPvk: the SP key, so encrypted assertions are accepted when the IdP encrypts.
 * Recipient, Destination, issuer and the DOCTYPE ban are checked in saml-checks.ts.
 */
const METADATA_REFRESH_MS = 60 * 60 * 1000;
const METADATA_TIMEOUT_MS = 10_000;

interface ResolvedIdp {
  entityId?: string;
  ssoUrl: string;
  certs: string[];
}

export class SamlServiceProvider {
  readonly passport = new Passport();
  private readonly pendingByRequest = new WeakMap<object, PendingSignIn>();
  private fetched?: { at: number; idp: ResolvedIdp };

  constructor(
    private readonly config: AuthConfig,
    private readonly requests: SamlRequestCacheStore,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {
    const strategy = new MultiSamlStrategy(
      {
        passReqToCallback: false,
        getSamlOptions: (req, done) => {
          this.samlOptions(req).then(
            (o) => done(null, o),
            (err: Error) => done(err),
          );
        },
      },
      (profile: Profile | null, done: VerifiedCallback) => done(null, profile ? { profile } : undefined),
      (_profile: Profile | null, done: VerifiedCallback) => done(new Error('single logout is not supported')),
    );
    // passport-saml bundles Express 4 types; the strategy works unchanged with Express 5.
    this.passport.use('saml', strategy as unknown as Strategy);
  }

  /** Marks `req` as starting a sign-in for `pending` (stored with the AuthnRequest ID). */
  bindPending(req: Request, pending: PendingSignIn): void {
    this.pendingByRequest.set(req, pending);
  }

  /** The IdP in effect: from the configuration, or from its metadata URL (refreshed hourly). */
  async idp(): Promise<ResolvedIdp> {
    const idp = this.config.saml.idp;
    if (!this.config.saml.enabled) {
      throw new ServiceUnavailableError('sign-in is not configured on this Crypto Server', {
        internalDetail: 'set CS_SAML_IDP_METADATA_URL or CS_SAML_IDP_METADATA_FILE (or CS_SAML_IDP_SSO_URL and CS_SAML_IDP_CERTS)',
        retryAfter: 300,
      });
    }
    if (!idp.metadataUrl) return { entityId: idp.entityId, ssoUrl: idp.ssoUrl!, certs: [...idp.certs] };
    const now = Date.now();
    if (!this.fetched || now - this.fetched.at > METADATA_REFRESH_MS) {
      try {
        const res = await this.fetchImpl(idp.metadataUrl, { signal: AbortSignal.timeout(METADATA_TIMEOUT_MS), redirect: 'error' });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const m = parseIdpMetadata('CS_SAML_IDP_METADATA_URL', await res.text());
        this.fetched = { at: now, idp: { entityId: idp.entityId ?? m.entityId, ssoUrl: idp.ssoUrl ?? m.ssoUrl, certs: [...m.certs, ...idp.certs] } };
      } catch (err) {
        // Keep using the last good metadata; without any, sign-in cannot work.
        if (!this.fetched) {
          throw new ServiceUnavailableError('the identity provider metadata cannot be loaded; try again later', {
            internalDetail: `CS_SAML_IDP_METADATA_URL: ${(err as Error).message}`,
            retryAfter: 30,
          });
        }
        this.fetched = { ...this.fetched, at: now - METADATA_REFRESH_MS + 60_000 };
      }
    }
    return this.fetched.idp;
  }

  private async samlOptions(req: object): Promise<Partial<PassportSamlConfig>> {
    const s = this.config.saml;
    const idp = await this.idp();
    const pending = this.pendingByRequest.get(req);
    return {
      entryPoint: idp.ssoUrl,
      idpCert: idp.certs,
      issuer: s.spEntityId,
      audience: s.spEntityId,
      callbackUrl: s.acsUrl,
      wantAssertionsSigned: true,
      wantAuthnResponseSigned: false,
      validateInResponseTo: s.allowUnsolicited ? ValidateInResponseTo.ifPresent : ValidateInResponseTo.always,
      requestIdExpirationPeriodMs: s.requestTtlSeconds * 1000,
      cacheProvider: new RequestScopedSamlCache(this.requests, s.requestTtlSeconds, pending),
      acceptedClockSkewMs: s.clockSkewMs,
      // NameIDPolicy: the format CS_SAML_USER_ATTRIBUTE needs (see nameIdFormat in config/auth.ts).
      identifierFormat: s.nameIdFormat,
      disableRequestedAuthnContext: true,
      signatureAlgorithm: 'sha256',
      digestAlgorithm: 'sha256',
      ...(s.spKey ? { privateKey: s.spKey, publicCert: s.spCert, decryptionPvk: s.spKey } : {}),
    };
  }

  /** SP metadata for the administrator to register at the IdP. */
  metadata(): string {
    const s = this.config.saml;
    return generateServiceProviderMetadata({
      issuer: s.spEntityId,
      callbackUrl: s.acsUrl,
      identifierFormat: s.nameIdFormat,
      wantAssertionsSigned: true,
      ...(s.spKey && s.spCert ? { privateKey: s.spKey, publicCerts: [s.spCert], decryptionPvk: s.spKey, decryptionCert: s.spCert, signatureAlgorithm: 'sha256' as const } : {}),
    });
  }
}
