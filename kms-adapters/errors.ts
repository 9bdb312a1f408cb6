/**
 * The adapters' own errors. kms-adapters/ is a leaf (usable on its own, like Tink's KMS clients):
 * these carry a stable `code` and whose fault it is, never an HTTP status — the server maps them
 * to HTTP in one place (server/errors.ts `asAppError`). `message` is safe to show a client; detail
 * for operators goes in `internalDetail`, which is logged, never sent.
 */
export type ErrorKind = 'user' | 'internal';

export abstract class KmsError extends Error {
  abstract readonly code: string;
  /** 'user': the request was wrong (retrying the same will fail again); 'internal': ours or the KMS's. */
  abstract readonly kind: ErrorKind;
  /** Seconds a caller should wait before retrying. */
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

/**
 * A wrapped key did not open under the associated data given: tampered, bound to someone else, or
 * under another KEK. Deliberately does not say which.
 */
export class UnwrapRefusedError extends KmsError {
  readonly code = 'unwrap_refused';
  readonly kind = 'user';
  constructor(internalDetail?: string) {
    super('the wrapped key does not open for this caller (tampered, bound to another owner or purpose, or under another key)', {
      internalDetail,
    });
  }
}

/** A call the adapter refuses before reaching the KMS: bad associated data, empty plaintext, bad label. */
export class KmsRequestError extends KmsError {
  readonly code: string = 'invalid_request';
  readonly kind = 'user';
}

export class MalformedEnvelopeError extends KmsRequestError {
  override readonly code = 'malformed_envelope';
}

export class UnknownKekError extends KmsRequestError {
  override readonly code = 'unknown_kek';
}

/** The KMS/HSM did not answer or answered with a transient fault: retry later. */
export class KmsUnavailableError extends KmsError {
  readonly code = 'kms_unavailable';
  readonly kind = 'internal';
  constructor(internalDetail: string, opts: { retryAfter?: number; cause?: unknown } = {}) {
    super('the key management service is unavailable; retry later', {
      internalDetail,
      retryAfter: opts.retryAfter ?? 5,
      cause: opts.cause,
    });
  }
}

/** The KMS refused for a reason retrying will not fix (access denied, key disabled or missing). */
export class KmsConfigurationError extends KmsError {
  readonly code = 'kms_misconfigured';
  readonly kind = 'internal';
  constructor(internalDetail: string, opts: { cause?: unknown } = {}) {
    super('the key management service refused the operation; an operator must check its configuration', {
      internalDetail,
      cause: opts.cause,
    });
  }
}

/** A setting is missing or invalid; stops start-up. The message names the setting, never its value. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
