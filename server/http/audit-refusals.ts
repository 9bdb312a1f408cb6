import type { ErrorRequestHandler } from 'express';
import type { Store } from '../repositories/store';
import { asAppError } from '../errors';
import { toAppError } from './problem';

/**
 * Records refusals that happen before a service could record them itself — the body parser's
 * (too large, wrong encoding, too many fields) — so every refused sign-in, token or key API request
 * leaves an audit event.
 * Errors our services raise (AppError) were audited where they were thrown; they pass unchanged.
 */
export function auditRefusals(store: Store, action: string): ErrorRequestHandler {
  return (err, req, _res, next) => {
    if (asAppError(err)) return next(err);
    const e = toAppError(err);
    if (e.status >= 500) return next(err);
    // On the key API the token was verified before the body was read: the refusal names the caller.
    const who = req.caller ? { actor: `user:${req.caller.userId}`, targetType: 'user', targetId: req.caller.userId } : { actor: 'anonymous' };
    store
      .audit({ ...who, requestId: req.requestId, action, outcome: 'refused', detail: { error: e.code, reason: e.message } })
      .catch(() => undefined)
      .finally(() => next(err));
  };
}
