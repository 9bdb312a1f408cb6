import { BadRequestError, ForbiddenError, UnauthorizedError } from '../errors';

/**
 * Errors of the sign-in and token layer. They extend the core's typed errors, so the one error
 * middleware maps them (problem+json); `code` carries the OAuth 2.0 / RFC 6750 error code that
 * clients switch on.
 */

/** A Bearer token that is missing, malformed, expired, for another audience or not signed by us. */
export class InvalidTokenError extends UnauthorizedError {
  override readonly code = 'invalid_token';
  constructor(message: string, internalDetail?: string) {
    super(message, { internalDetail });
  }
}

export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'unsupported_response_type'
  | 'invalid_scope';

/** A refused authorize or token request (RFC 6749 §4.1.2.1, §5.2). */
export class OAuthError extends BadRequestError {
  override readonly code: OAuthErrorCode;
  constructor(code: OAuthErrorCode, message: string, internalDetail?: string) {
    super(message, { internalDetail });
    this.code = code;
  }
}

/** A SAML response that does not prove a sign-in for a request this server made. */
export class SamlRefusedError extends ForbiddenError {
  override readonly code = 'saml_refused';
  constructor(message: string, internalDetail?: string) {
    super(message, { internalDetail });
  }
}

/** The IdP vouched for someone who is not a provisioned, active user here. */
export class UnknownUserError extends ForbiddenError {
  override readonly code = 'unknown_user';
  constructor(internalDetail?: string) {
    super('your account is not provisioned for Crypto Server or is deactivated; ask your administrator', { internalDetail });
  }
}
