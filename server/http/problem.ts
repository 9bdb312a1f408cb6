import type { ErrorRequestHandler, Request, Response } from 'express';
import type { Logger } from '../log';
import { STATUS_CODES } from 'node:http';
import { AppError, BadRequestError, InternalError, NotFoundError, PayloadTooLargeError, RequestRejectedError, ValidationError, asAppError } from '../errors';

/**
 * Normalises anything thrown into an AppError: ours pass through; errors Express, body-parser or
 * Node raised with a 4xx status keep that status (with our own message: theirs can quote input or
 * internals, which go to the log only); everything else becomes an opaque 500.
 */
export function toAppError(err: unknown): AppError {
  const known = asAppError(err);
  if (known) return known;
  const e = err as { type?: string; status?: unknown; statusCode?: unknown; message?: string; code?: unknown };
  const internalDetail = e?.message;
  if (e?.type === 'entity.too.large') return new PayloadTooLargeError('request body is larger than the configured limit');
  if (e?.type === 'parameters.too.many') return new PayloadTooLargeError('the form has more fields than this endpoint accepts', { internalDetail });
  if (e?.type === 'entity.parse.failed') return new BadRequestError('request body is not valid JSON');
  if (e?.type === 'charset.unsupported' || e?.type === 'encoding.unsupported') {
    return new RequestRejectedError(415, 'unsupported_media_type', 'unsupported body encoding (accepted: UTF-8; identity, gzip, deflate or br)', { internalDetail });
  }
  const status = clientStatus(e?.status) ?? clientStatus(e?.statusCode);
  if (status === undefined) return new InternalError('internal error', { internalDetail });
  // Express's router: decodeURIComponent failed on a path parameter.
  if (err instanceof URIError) return new BadRequestError('the request URL is not valid percent-encoding (RFC 3986)', { internalDetail });
  // body-parser: the body did not inflate (zlib / brotli error codes).
  if (typeof e.code === 'string' && /^(Z_|ERR_BROTLI|ERR__ERROR)/.test(e.code)) {
    return new BadRequestError('the request body is not valid data for its Content-Encoding', { internalDetail });
  }
  if (status === 400) return new BadRequestError('the request is not valid', { internalDetail });
  const reason = (STATUS_CODES[status] ?? 'client error').toLowerCase();
  return new RequestRejectedError(status, reason.replace(/[^a-z]+/g, '_'), `the request was refused: ${reason}`, { internalDetail });
}

/** A 4xx status an error carries (http-errors' `status`/`statusCode`); 5xx and others are not trusted. */
function clientStatus(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 400 && v <= 499 ? v : undefined;
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
  res.status(e.status).type('application/problem+json').json(problemBody(e, req.requestId));
}

/** The problem+json document for an error (also written by the key API's fast path, server/http/fast/). */
export function problemBody(e: AppError, requestId: string): Record<string, unknown> {
  return {
    type: `urn:crypto-server:error:${e.code}`,
    title: e.code.replace(/_/g, ' '),
    status: e.status,
    detail: e.message,
    code: e.code,
    requestId,
    ...(e instanceof ValidationError && e.issues.length ? { errors: e.issues } : {}),
  };
}

export function notFound(req: Request, _res: Response, next: (err: unknown) => void): void {
  next(new NotFoundError(`no route for ${req.method} ${req.path}`));
}
