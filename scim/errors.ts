/**
 * The one place that turns errors into SCIM error responses (RFC 7644 §3.12): `status` as a
 * string, `scimType` where the RFC defines one, application/scim+json. Domain errors from the
 * core (server/errors.ts), scimmy's SCIMError, body-parser failures and our input checks all end
 * up here. Unknown errors become a generic 500 without internals.
 */
import type { ErrorRequestHandler, Request, Response } from 'express';
import { asAppError, ConflictError } from '../server/errors';
import { toAppError } from '../server/http/problem';
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
  // scimmy's schema coercion throws TypeError for wrong types and missing required attributes.
  if (err instanceof TypeError && /attribute|expected|required|value/i.test(err.message) && !/Cannot read|is not a function|undefined/.test(err.message)) {
    return { status: 400, body: body(400, err.message, 'invalidValue') };
  }
  // Everything else as on the rest of the API (body-parser failures included); unknown errors
  // become a generic 500 whose internals are logged, never sent.
  const e = toAppError(err);
  const scimType = e instanceof ConflictError ? 'uniqueness' : e.status === 400 ? (asAppError(err) ? 'invalidValue' : transportScimType(err)) : undefined;
  return { status: e.status, body: body(e.status, e.message, scimType), retryAfter: e.retryAfter, internal: e.status >= 500 ? err : undefined };
}

/** A 400 raised before our code ran: a body that does not parse or inflate is invalidSyntax; a bad URL has no scimType. */
function transportScimType(err: unknown): string | undefined {
  return err instanceof URIError ? undefined : 'invalidSyntax';
}

export function sendScimError(res: Response, mapped: MappedError): void {
  if (mapped.retryAfter !== undefined) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(mapped.retryAfter))));
  if (mapped.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="scim"');
  res.status(mapped.status).type(SCIM_CONTENT_TYPE).send(JSON.stringify(mapped.body));
}

/** A hung database must not hold the refusal's answer: it waits for its audit row at most this long. */
export const REFUSAL_AUDIT_WAIT_MS = 2_000;

async function bounded(p: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, REFUSAL_AUDIT_WAIT_MS)))]);
  clearTimeout(timer);
}

/** Called for every 4xx but 404 (an answer, not a refusal) before it is sent (scim/refusal-audit.ts); the response waits for it (at most REFUSAL_AUDIT_WAIT_MS), never fails by it. */
export type OnRefused = (req: Request, res: Response, mapped: MappedError) => Promise<void>;

export function scimErrorHandler(log?: { error: (obj: object, msg: string) => void; info: (obj: object, msg: string) => void }, onRefused?: OnRefused): ErrorRequestHandler {
  return async (err, req, res, next) => {
    if (res.headersSent) return next(err);
    const mapped = mapError(err);
    const entry = { requestId: req.requestId, method: req.method, path: req.path, status: mapped.status, scimType: mapped.body.scimType };
    if (mapped.internal !== undefined) {
      const i = mapped.internal as { internalDetail?: string; message?: string; stack?: string };
      log?.error({ ...entry, err: { message: i?.message, detail: i?.internalDetail, stack: i?.stack } }, 'scim request failed');
    } else {
      // What the IdP did wrong, for the operator; never the body (it may carry personal data).
      log?.info({ ...entry, detail: mapped.body.detail }, 'scim request refused');
      if (onRefused && mapped.status >= 400 && mapped.status < 500 && mapped.status !== 404) await bounded(onRefused(req, res, mapped));
    }
    if (!res.headersSent) sendScimError(res, mapped);
  };
}
