import type { ErrorRequestHandler } from 'express';
import type { Store } from '../repositories/store';
import { AppError } from '../errors';
import { toAppError } from './problem';

/**
 * Records refusals that happen before a service could record them itself — the body parser's
 * (too large, wrong encoding) — so every refused sign-in or token request leaves an audit event.
 * Errors our services raise (AppError) were audited where they were thrown; they pass unchanged.
 */
export function auditRefusals(store: Store, action: string): ErrorRequestHandler {
  return (err, req, _res, next) => {
    if (err instanceof AppError) return next(err);
    const e = toAppError(err);
    if (e.status >= 500) return next(err);
    store
      .audit({ actor: 'anonymous', requestId: req.requestId, action, outcome: 'refused', detail: { error: e.code, reason: e.message } })
      .catch(() => undefined)
      .finally(() => next(err));
  };
}
