/**
 * Typed domain errors. Services and adapters throw these; one HTTP layer per protocol maps them
 * (problem+json for our API, the SCIM error schema under /scim). `message` is always safe to show
 * to a client: never put key material, secrets or internals in it. Operator-only detail goes in
 * `internalDetail`, which is logged, never sent.
 */
export type ErrorKind = 'user' | 'internal';

export abstract class AppError extends Error {
  abstract readonly code: string;
  abstract readonly status: number;
  readonly kind: ErrorKind = 'user';
  /** Seconds a client should wait before retrying (429, 503). */
  retryAfter?: number;
  /** Logged for operators, never sent to clients. */
  internalDetail?: string;

  constructor(message: string, opts: { internalDetail?: string; retryAfter?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.internalDetail = opts.internalDetail;
    this.retryAfter = opts.retryAfter;
  }
}

export class BadRequestError extends AppError {
  readonly code: string = 'invalid_request';
  readonly status = 400;
}

/** Input that fails schema validation; `issues` names each offending field. */
export class ValidationError extends BadRequestError {
  override readonly code = 'invalid_input';
  constructor(message: string, readonly issues: { path: string; message: string }[] = []) {
    super(message);
  }
}

export class MalformedEnvelopeError extends BadRequestError {
  override readonly code = 'malformed_envelope';
}

export class UnknownKekError extends BadRequestError {
  override readonly code = 'unknown_kek';
}

export class UnauthorizedError extends AppError {
  readonly code: string = 'unauthorized';
  readonly status = 401;
}

export class ForbiddenError extends AppError {
  readonly code: string = 'forbidden';
  readonly status = 403;
}

/**
 * A wrapped key did not open under the associated data recomputed for the caller: tampered,
 * bound to someone else, or under another KEK. Deliberately does not say which.
 */
export class UnwrapRefusedError extends ForbiddenError {
  override readonly code = 'unwrap_refused';
  constructor(internalDetail?: string) {
    super('the wrapped key does not open for this caller (tampered, bound to another owner or purpose, or under another key)', {
      internalDetail,
    });
  }
}

export class InactiveUserError extends ForbiddenError {
  override readonly code = 'user_inactive';
  constructor() {
    super('the user is deactivated; key operations are blocked until the identity provider reactivates them');
  }
}

export class NotFoundError extends AppError {
  readonly code: string = 'not_found';
  readonly status = 404;
}

export class ConflictError extends AppError {
  readonly code: string = 'conflict';
  readonly status = 409;
  /** The attribute that collided (userName, externalId, displayName), when known. */
  readonly target?: string;
  constructor(message: string, opts: { target?: string; internalDetail?: string } = {}) {
    super(message, opts);
    this.target = opts.target;
  }
}

export class PayloadTooLargeError extends AppError {
  readonly code = 'payload_too_large';
  readonly status = 413;
}

/**
 * A 4xx that Express, body-parser or Node raised before our code ran (bad percent-encoding, a body
 * that does not inflate, too many form fields, ...). Keeps the status it carried; the message is ours.
 */
export class RequestRejectedError extends AppError {
  readonly code: string;
  readonly status: number;
  constructor(status: number, code: string, message: string, opts: { internalDetail?: string } = {}) {
    super(message, opts);
    this.status = status;
    this.code = code;
  }
}

export class RateLimitedError extends AppError {
  readonly code = 'rate_limited';
  readonly status = 429;
}

/** The KMS/HSM did not answer or answered with a transient fault: retry later. */
export class KmsUnavailableError extends AppError {
  readonly code = 'kms_unavailable';
  readonly status = 503;
  override readonly kind = 'internal';
  constructor(internalDetail: string, opts: { retryAfter?: number; cause?: unknown } = {}) {
    super('the key management service is unavailable; retry later', {
      internalDetail,
      retryAfter: opts.retryAfter ?? 5,
      cause: opts.cause,
    });
  }
}

/** The KMS refused for a reason retrying will not fix (access denied, key disabled or missing). */
export class KmsConfigurationError extends AppError {
  readonly code = 'kms_misconfigured';
  readonly status = 500;
  override readonly kind = 'internal';
  constructor(internalDetail: string, opts: { cause?: unknown } = {}) {
    super('the key management service refused the operation; an operator must check its configuration', {
      internalDetail,
      cause: opts.cause,
    });
  }
}

export class ServiceUnavailableError extends AppError {
  readonly code = 'unavailable';
  readonly status = 503;
  override readonly kind = 'internal';
}

export class InternalError extends AppError {
  readonly code = 'internal_error';
  readonly status = 500;
  override readonly kind = 'internal';
}

/** A setting is missing or invalid; stops start-up. The message names the setting, never its value. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
