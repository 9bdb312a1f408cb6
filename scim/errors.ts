/**
 * The one place that turns errors into SCIM error responses (RFC 7644 §3.12): `status` as a
 * string, `scimType` where the RFC defines one, application/scim+json. Domain errors from the
 * core (server/errors.ts), scimmy's SCIMError, body-parser failures and our input checks all end
 * up here. Unknown errors become a generic 500 without internals.
 */
import type { ErrorRequestHandler, Response } from 'express';
import { AppError, ConflictError, KmsUnavailableError, NotFoundError, PayloadTooLargeError, RateLimitedError, UnauthorizedError, ValidationError } from '../server/errors';
import { UnknownAttributeError } from './idp-quirks';
import { ERROR_SCHEMA, SCIMMY } from './schemas';

export const SCIM_CONTENT_TYPE = 'application/scim+json; charset=utf-8';

export interface ScimErrorBody {
  schemas: [typeof ERROR_SCHEMA];
  status: string;
  scimType?: string;
  detail: string;
}

export interface MappedError {
  status: number;
  body: ScimErrorBody;
  retryAfter?: number;
  /** Logged at error level (5xx); never sent. */
  internal?: unknown;
}

function body(status: number, detail: string, scimType?: string): ScimErrorBody {
  return { schemas: [ERROR_SCHEMA], status: String(status), ...(scimType ? { scimType } : {}), detail };
}

/** A SCIM-flavoured error a route can throw directly. */
export class ScimError extends Error {
  constructor(
    readonly status: number,
    readonly scimType: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

export function mapError(err: unknown): MappedError {
  if (err instanceof ScimError || err instanceof SCIMMY.Types.Error) {
    const status = Number(err.status) || 400;
    return { status, body: body(status, err.message, err.scimType ?? undefined) };
  }
  if (err instanceof UnknownAttributeError) return { status: 400, body: body(400, err.message, 'invalidValue') };
  if (err instanceof ConflictError) return { status: 409, body: body(409, err.message, 'uniqueness') };
  if (err instanceof ValidationError) return { status: 400, body: body(400, err.message, 'invalidValue') };
  if (err instanceof NotFoundError) return { status: 404, body: body(404, err.message) };
  if (err instanceof UnauthorizedError) return { status: 401, body: body(401, err.message) };
  if (err instanceof RateLimitedError) return { status: 429, body: body(429, err.message), retryAfter: err.retryAfter ?? 60 };
  if (err instanceof PayloadTooLargeError) return { status: 413, body: body(413, err.message) };
  if (err instanceof KmsUnavailableError) return { status: 503, body: body(503, err.message), retryAfter: err.retryAfter ?? 5, internal: err };
  if (err instanceof AppError) {
    const status = err.status;
    return {
      status,
      body: body(status, err.kind === 'internal' && status >= 500 ? err.message : err.message, status === 400 ? 'invalidValue' : undefined),
      retryAfter: err.retryAfter,
      internal: status >= 500 ? err : undefined,
    };
  }
  // body-parser (express.json) failures carry `type` and `status`.
  const e = err as { type?: string; status?: number } | undefined;
  if (e?.type === 'entity.too.large') return { status: 413, body: body(413, 'request body is larger than the configured limit') };
  if (e?.type === 'entity.parse.failed') return { status: 400, body: body(400, 'request body is not valid JSON', 'invalidSyntax') };
  if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') return { status: 415, body: body(415, 'unsupported body encoding') };
  // scimmy's schema coercion throws TypeError for wrong types and missing required attributes.
  if (err instanceof TypeError && /attribute|expected|required|value/i.test(err.message) && !/Cannot read|is not a function|undefined/.test(err.message)) {
    return { status: 400, body: body(400, err.message, 'invalidValue') };
  }
  return { status: 500, body: body(500, 'internal error'), internal: err };
}

export function sendScimError(res: Response, mapped: MappedError): void {
  if (mapped.retryAfter !== undefined) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(mapped.retryAfter))));
  if (mapped.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="scim"');
  res.status(mapped.status).type(SCIM_CONTENT_TYPE).send(JSON.stringify(mapped.body));
}

export function scimErrorHandler(log?: { error: (obj: object, msg: string) => void; info: (obj: object, msg: string) => void }): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) return next(err);
    const mapped = mapError(err);
    const entry = { requestId: req.requestId, method: req.method, path: req.path, status: mapped.status, scimType: mapped.body.scimType };
    if (mapped.internal !== undefined) {
      const i = mapped.internal as { internalDetail?: string; message?: string; stack?: string };
      log?.error({ ...entry, err: { message: i?.message, detail: i?.internalDetail, stack: i?.stack } }, 'scim request failed');
    } else {
      // What the IdP did wrong, for the operator; never the body (it may carry personal data).
      log?.info({ ...entry, detail: mapped.body.detail }, 'scim request refused');
    }
    sendScimError(res, mapped);
  };
}
