/**
 * Typed domain errors. Services and adapters throw these; one HTTP layer per protocol maps them
 * (problem+json for our API, the SCIM error schema under /scim). `message` is always safe to show
 * to a client: never put key material, secrets or internals in it. Operator-only detail goes in
 * `internalDetail`, which is logged, never sent.
 */
import { KmsError, type ErrorKind } from '../kms-adapters/errors';

// The KMS adapters' errors are theirs (kms-adapters/ is a leaf); the app throws and matches the same classes.
export {
  ConfigError,
  KmsConfigurationError,
  KmsError,
  KmsRequestError,
  KmsUnavailableError,
  MalformedEnvelopeError,
  UnknownKekError,
  UnwrapRefusedError,
  type ErrorKind,
} from '../kms-adapters/errors';

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

export class UnauthorizedError extends AppError {
  readonly code: string = 'unauthorized';
  readonly status = 401;
}

export class ForbiddenError extends AppError {
  readonly code: string = 'forbidden';
  readonly status = 403;
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
/** The KMS refused for a reason retrying will not fix (access denied, key disabled or missing). */
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

/** HTTP status of each KMS adapter error code; codes not listed are the caller's fault (400). */
const KMS_STATUS: Readonly<Record<string, number>> = {
  unwrap_refused: 403,
  kms_unavailable: 503,
  kms_misconfigured: 500,
};

/** A KMS adapter's error as the app maps it: same code, message, detail and retry hint, plus a status. */
class KmsFailure extends AppError {
  readonly code: string;
  readonly status: number;
  override readonly kind: ErrorKind;
  constructor(err: KmsError) {
    super(err.message, { internalDetail: err.internalDetail, retryAfter: err.retryAfter, cause: err });
    this.code = err.code;
    this.kind = err.kind;
    this.status = KMS_STATUS[err.code] ?? 400;
  }
}

/** The app's view of a deliberate error (its own or a KMS adapter's); undefined for anything unexpected. */
export function asAppError(err: unknown): AppError | undefined {
  if (err instanceof AppError) return err;
  if (err instanceof KmsError) return new KmsFailure(err);
  return undefined;
}
