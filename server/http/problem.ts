import type { ErrorRequestHandler, Request, Response } from 'express';
import type { Logger } from '../log';
import { AppError, BadRequestError, InternalError, NotFoundError, PayloadTooLargeError, ValidationError } from '../errors';

/**
 * Normalises anything thrown into an AppError: ours pass through, body-parser's become 400/413,
 * everything else an opaque 500 (the original is logged, never sent).
 */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const e = err as { type?: string; status?: number; message?: string };
  if (e?.type === 'entity.too.large') return new PayloadTooLargeError('request body is larger than the configured limit');
  if (e?.type === 'entity.parse.failed') return new BadRequestError('request body is not valid JSON');
  if (e?.type === 'charset.unsupported' || e?.type === 'encoding.unsupported') return new BadRequestError('unsupported body encoding');
  return new InternalError('internal error', { internalDetail: e?.message });
}

/** Logs an error once, with internals for operators and never key material. */
export function logError(log: Logger, req: Request, err: unknown, mapped: AppError): void {
  const entry = { requestId: req.requestId, code: mapped.code, status: mapped.status, detail: mapped.internalDetail };
  if (mapped.status >= 500) log.error({ ...entry, err }, mapped.message);
  else log.info(entry, mapped.message);
}

/** RFC 7807 problem+json for our API: the one place errors become HTTP responses outside /scim. */
export function problemHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const e = toAppError(err);
    logError(log, req, err, e);
    sendProblem(req, res, e);
  };
}

export function sendProblem(req: Request, res: Response, e: AppError): void {
  if (e.retryAfter) res.setHeader('Retry-After', String(e.retryAfter));
  res.status(e.status).type('application/problem+json').json({
    type: `urn:crypto-server:error:${e.code}`,
    title: e.code.replace(/_/g, ' '),
    status: e.status,
    detail: e.message,
    code: e.code,
    requestId: req.requestId,
    ...(e instanceof ValidationError && e.issues.length ? { errors: e.issues } : {}),
  });
}

export function notFound(req: Request, _res: Response, next: (err: unknown) => void): void {
  next(new NotFoundError(`no route for ${req.method} ${req.path}`));
}
