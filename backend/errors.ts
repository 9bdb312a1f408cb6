/** Errors of the backend API; mapped to problem+json by server/http/problem.ts like every AppError. */
import { AppError, ForbiddenError } from '../server/errors';

/** Member references that name no live user: nothing was written. */
export class UnknownMembersError extends AppError {
  readonly code = 'unknown_members';
  readonly status = 422;
  constructor(readonly unknown: string[]) {
    super(`these members are not provisioned users: ${unknown.slice(0, 20).map((u) => JSON.stringify(u.slice(0, 255))).join(', ')}${unknown.length > 20 ? ` and ${unknown.length - 20} more` : ''}`);
  }
}

/** If-Match named a version the group no longer has: another writer changed it first. */
export class PreconditionFailedError extends AppError {
  readonly code = 'precondition_failed';
  readonly status = 412;
}

/** The IdP manages this group (SCIM): the backend API may read it, never change it. */
export class IdpManagedGroupError extends ForbiddenError {
  override readonly code = 'group_managed_by_idp';
  constructor(id: string) {
    super(`group ${id} is managed by the identity provider (SCIM) and is read-only here`);
  }
}

/** The Idempotency-Key was used before with another request. */
export class IdempotencyMismatchError extends AppError {
  readonly code = 'idempotency_key_reused';
  readonly status = 422;
  constructor() {
    super('this Idempotency-Key was already used with a different request; use a new key for a new request');
  }
}

/** The first request with this Idempotency-Key is still running (or its lease has not run out yet). */
export class IdempotencyInProgressError extends AppError {
  readonly code = 'idempotency_in_progress';
  readonly status = 409;
  constructor(retryAfter = 1) {
    super('a request with this Idempotency-Key is still being processed; retry after Retry-After seconds', { retryAfter });
  }
}

/**
 * This request ran past its Idempotency-Key lease and a retry with the same key took the key over:
 * its write was rolled back, so only the retry writes. Retrying again returns the retry's answer.
 */
export class IdempotencyClaimLostError extends AppError {
  readonly code = 'idempotency_key_taken_over';
  readonly status = 409;
  constructor() {
    super('a retry with this Idempotency-Key took it over while this request ran; nothing was written, retry to get its response', { retryAfter: 1 });
  }
}
