import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { AppDeps } from '../app';
import type { AuthServices } from '../../auth';
import { ValidationError, asAppError } from '../../errors';
import { keyApiOperations, serializeKeys, BEARER_CHALLENGE, type KeyApiCaller, type KeyResponse } from '../routes/keys-api';
import { logError, problemBody, toAppError } from '../problem';
import { helmetHeaders } from './static-headers';

/**
 * The key API's hot routes on plain node:http, ahead of the Express app (issue 10: Express's
 * routing, helmet, body parsing and header writes were most of the CPU left per unwrap).
 *
 * Only the common shape is handled here: `POST /api/keys/password-key/unwrap` and `GET /api/keys/me`
 * spelled exactly, a JSON body with a Content-Length within CS_MAX_BODY_BYTES, no Content-Encoding
 * and no charset other than UTF-8. Anything else — preflights, other methods, HEAD, a query-less
 * variant in other case or with a trailing slash, chunked, compressed or oversized bodies — goes to
 * the Express app untouched, before a byte of it is read, so those answers are the app's own.
 *
 * What it keeps of the Express path (test/http/fast-path-equivalence.test.ts compares both):
 * request id, helmet's headers, the same CORS decision and Vary, no-store, Bearer verification
 * through the same SignInService (its audit of a refused token included), strict JSON (first
 * character `{`/`[`, duplicate names refused), the same operations (keyApiOperations: the key
 * service reads the user and commits the audit row before the response), and the same
 * problem+json documents, audit rows and log lines for every refusal.
 */
const UNWRAP = '/api/keys/password-key/unwrap';
const ME = '/api/keys/me';
const SAFE_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const JSON_TYPES = new Set(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8']);

type Handler = (req: IncomingMessage, res: ServerResponse, requestId: string, caller: KeyApiCaller) => Promise<KeyResponse>;

export function withFastKeyApi(deps: AppDeps, auth: AuthServices, app: RequestListener): RequestListener {
  const ops = keyApiOperations(deps);
  const limit = deps.config.server.maxBodyBytes;
  const allowed = new Set(deps.config.auth.cors.origins);
  // Every fast response starts with these: helmet's set, then what the key API's router adds.
  const always = [...helmetHeaders(), 'Vary', 'Origin', 'Cache-Control', 'no-store', 'Pragma', 'no-cache'];

  const handlers: Record<string, Handler> = {
    [`GET ${ME}`]: (_req, _res, requestId, caller) => ops.me(caller, requestId),
    [`POST ${UNWRAP}`]: async (req, _res, requestId, caller) => {
      const raw = await readBody(req);
      return ops.unwrapPasswordKey(caller, requestId, parseStrictJson(raw), raw);
    },
  };

  /** The handler for this request, or undefined when the Express app must answer it. */
  const route = (req: IncomingMessage): Handler | undefined => {
    const h = handlers[`${req.method} ${req.url}`];
    if (!h) return undefined;
    const headers = req.headers;
    const length = headers['content-length'];
    // A GET with a body is parsed (and can be refused) by express.json: the app answers it.
    if (req.method === 'GET') return length === undefined && headers['transfer-encoding'] === undefined ? h : undefined;
    if (headers['content-encoding'] !== undefined || headers['transfer-encoding'] !== undefined || length === undefined) return undefined;
    if (!JSON_TYPES.has(headers['content-type']?.toLowerCase() ?? '')) return undefined;
    const n = Number(length);
    return /^[0-9]+$/.test(length) && n > 0 && n <= limit ? h : undefined;
  };

  const write = (res: ServerResponse, status: number, head: string[], type: string, body: string, extra: string[] = []) => {
    res.writeHead(status, [...always, ...head, ...extra, 'Content-Type', type, 'Content-Length', String(Buffer.byteLength(body))]);
    res.end(body);
  };

  const fail = async (res: ServerResponse, head: string[], requestId: string, caller: KeyApiCaller | undefined, err: unknown, path: string) => {
    const e = toAppError(err);
    // As the Express routes do: a refused body is recorded here (the key service never saw it); a
    // refusal raised below our code (body read, JSON parse) as auditRefusals records it.
    if (caller && err instanceof ValidationError) await ops.refused(caller, requestId, err, path);
    else if (!asAppError(err) && e.status < 500) {
      const who = caller ? { actor: `user:${caller.userId}`, targetType: 'user', targetId: caller.userId } : { actor: 'anonymous' };
      await deps.store.audit({ ...who, requestId, action: 'key-api.request', outcome: 'refused', detail: { error: e.code, reason: e.message } }).catch(() => undefined);
    }
    logError(deps.log, { requestId } as Parameters<typeof logError>[1], err, e);
    if (res.headersSent || res.destroyed) return;
    const body = JSON.stringify(problemBody(e, requestId));
    // Express's res.json adds a weak ETag to every problem (etag package: length and SHA-1).
    const etag = `W/"${Buffer.byteLength(body).toString(16)}-${createHash('sha1').update(body).digest('base64').substring(0, 27)}"`;
    const extra = e.retryAfter ? ['Retry-After', String(e.retryAfter)] : [];
    write(res, e.status, head, 'application/problem+json; charset=utf-8', body, [...extra, 'ETag', etag]);
  };

  const serve = async (req: IncomingMessage, res: ServerResponse, handler: Handler) => {
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && SAFE_ID.test(given) ? given : randomUUID();
    const origin = req.headers.origin;
    const head = ['X-Request-Id', requestId];
    if (typeof origin === 'string' && allowed.has(origin)) head.push('Access-Control-Allow-Origin', origin, 'Access-Control-Expose-Headers', 'WWW-Authenticate');
    let caller: KeyApiCaller | undefined;
    try {
      const claims = await auth.signIn.authenticate(req.headers.authorization, { actor: 'anonymous', requestId }, req.socket.remoteAddress);
      caller = { userId: claims.sub, clientId: claims.client_id };
    } catch (err) {
      head.push('WWW-Authenticate', BEARER_CHALLENGE);
      return fail(res, head, requestId, undefined, err, req.url!);
    }
    try {
      const keys = await handler(req, res, requestId, caller);
      write(res, 200, head, 'application/json; charset=utf-8', serializeKeys(keys));
    } catch (err) {
      await fail(res, head, requestId, caller, err, req.url!);
    }
  };

  return (req, res) => {
    const handler = route(req);
    if (!handler) return app(req, res);
    serve(req, res, handler).catch((err: unknown) => {
      deps.log.error({ err }, 'key API fast path failed');
      if (!res.headersSent) res.writeHead(500).end();
    });
  };
}

/** The body, whose Content-Length `route` checked against the limit (Node enforces the length). */
function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const aborted = () => reject(Object.assign(new Error('request aborted'), { status: 400, type: 'request.aborted' }));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      for (const c of chunks) if (c !== body) c.fill(0);
      resolve(body);
    });
    req.once('aborted', aborted);
    req.once('error', aborted);
  });
}

/**
 * body-parser's strict JSON, as express.json({ strict: true }) reads it: a UTF-8 byte-order mark
 * is dropped, the first non-blank character must open an object or array, and a failure is its
 * `entity.parse.failed` (mapped to the same 400 by toAppError).
 */
function parseStrictJson(raw: Buffer): unknown {
  const text = raw.toString('utf8').replace(/^\uFEFF/, '');
  const first = /\S/.exec(text)?.[0];
  try {
    if (first !== '{' && first !== '[') throw new SyntaxError('strict violation');
    return JSON.parse(text);
  } catch (err) {
    throw Object.assign(err as Error, { status: 400, type: 'entity.parse.failed' });
  }
}
