import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import type { AppDeps } from '../app';
import type { AuthServices } from '../../auth';
import type { OpContext } from '../../keys/types';
import { NotFoundError, ValidationError } from '../../errors';
import { duplicateMemberName } from '../json-duplicates';
import { corsAllowList } from '../cors';
import { auditRefusals } from '../audit-refusals';

/**
 * The signed-in user's key API (Bearer access token). Identity comes only from the verified token:
 * there is no user id in any path or body, so a caller can only ever reach their own keys, and a
 * blob of another user fails inside the KMS (its associated data names the owner).
 * Every response is `Cache-Control: no-store`; every call is audited by the key service.
 */
declare module 'express-serve-static-core' {
  interface Request {
    /** Set by the Bearer middleware of the key API. */
    caller?: KeyApiCaller;
  }
}

const b64url = z.string().regex(/^[A-Za-z0-9_-]+$/, 'must be base64url without padding');
const label = z.string().min(1).max(128).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces').optional();
/** Exported for the OpenAPI document (backend/openapi.ts). */
export const unwrapPasswordKey = z.object({ wrappedPasswordKey: z.string().min(1).max(64 * 1024) }).strict();
/** Bytes an unpadded base64url string decodes to, counted without decoding the key material. */
const decodedLength = (s: string) => (s.length % 4 === 1 ? -1 : Math.floor((s.length * 3) / 4));
const dataKey = b64url.max(128).refine((k) => decodedLength(k) >= 16 && decodedLength(k) <= 64, 'must encode 16 to 64 bytes');
/** Exported for the OpenAPI document (backend/openapi.ts). */
export const wrapDataKey = z.object({ key: dataKey, label }).strict();
/** Exported for the OpenAPI document (backend/openapi.ts). */
export const unwrapDataKey = z.object({ wrappedKey: z.string().min(1).max(64 * 1024), label }).strict();

/** The JSON text of each request body, for the duplicate-name check zod cannot see. */
const rawBodies = new WeakMap<object, Buffer>();

/**
 * Validates a parsed JSON body. `raw` is its JSON text, for the duplicate-name check zod cannot see;
 * it can carry a plaintext key (data-keys/wrap), so it is zeroed once checked, like the key.
 */
export function parseBody<T>(schema: z.ZodType<T>, json: unknown, raw: Buffer | undefined): T {
  let duplicate: string | undefined;
  if (raw) {
    try {
      duplicate = duplicateMemberName(raw.toString('utf8'));
    } finally {
      raw.fill(0);
    }
  }
  if (duplicate !== undefined) {
    const path = duplicate.slice(0, 64);
    throw new ValidationError(`invalid request body: ${path} appears more than once`, [{ path, message: 'appears more than once (RFC 7493 §2.3)' }]);
  }
  const r = schema.safeParse(json ?? {});
  if (!r.success) {
    const issues = r.error.issues.map((i) => ({ path: i.path.join('.') || '(body)', message: i.message }));
    throw new ValidationError(`invalid request body: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`, issues);
  }
  return r.data;
}

function parse<T>(schema: z.ZodType<T>, req: Request): T {
  const raw = rawBodies.get(req);
  rawBodies.delete(req);
  return parseBody(schema, req.body, raw);
}

/** A response body holding plaintext key bytes (`secrets`), zeroed once it is serialised. */
export interface KeyResponse {
  body: Record<string, unknown>;
  secrets: Buffer[];
}

export type KeyApiCaller = { userId: string; clientId: string };

/**
 * What the key API's routes do between authentication and the response, shared by the Express
 * routes below and the fast path (server/http/fast/): one copy of each check.
 */
export function keyApiOperations(deps: AppDeps) {
  const ctxOf = (caller: KeyApiCaller, requestId: string): OpContext => ({ actor: `user:${caller.userId}`, requestId });
  return {
    ctxOf,
    /**
     * Refusals the key service records itself (inactive user, unwrap refused, KMS errors) are not
     * repeated here; a body that fails validation or an unknown route never reached it, so they are
     * recorded here.
     */
    refused: (caller: KeyApiCaller, requestId: string, err: ValidationError | NotFoundError, path: string) =>
      deps.store
        .audit({ ...ctxOf(caller, requestId), action: 'key-api.request', outcome: 'refused', targetType: 'user', targetId: caller.userId, detail: { error: err.code, path: path.slice(0, 200) } })
        .catch(() => undefined),
    me: async (caller: KeyApiCaller, requestId: string): Promise<KeyResponse> => {
      const b = await deps.keys.getUserKeyBundle(caller.userId, ctxOf(caller, requestId));
      return {
        body: {
          userId: b.userId,
          keyAlg: b.keyAlg,
          publicJwk: b.publicJwk,
          privateJwe: b.privateJwe,
          wrappedPasswordKey: b.wrappedPasswordKey,
          passwordKey: b.passwordKey.toString('base64url'),
          groups: b.groups,
        },
        secrets: [b.passwordKey],
      };
    },
    unwrapPasswordKey: async (caller: KeyApiCaller, requestId: string, json: unknown, raw: Buffer | undefined): Promise<KeyResponse> => {
      const body = parseBody(unwrapPasswordKey, json, raw);
      const pk = await deps.keys.unwrapPasswordKey(caller.userId, ctxOf(caller, requestId), body.wrappedPasswordKey);
      return { body: { passwordKey: pk.toString('base64url') }, secrets: [pk] };
    },
  };
}

/** The JSON text of a key response; its secrets are zeroed whether or not serialising succeeds. */
export function serializeKeys(r: KeyResponse): string {
  try {
    return JSON.stringify(r.body);
  } finally {
    for (const s of r.secrets) s.fill(0);
  }
}

/** The Bearer challenge sent with every refused token (RFC 6750 §3). */
export const BEARER_CHALLENGE = 'Bearer realm="crypto-server", error="invalid_token"';

/**
 * Written with `end`, not `res.json`: Express would add an ETag — a hash of the body, i.e. of the
 * key — and spend a SHA-1 on every call doing it.
 */
function sendKeys(res: Response, r: KeyResponse): void {
  res.type('application/json').end(serializeKeys(r));
}

export function keysApiRoutes(deps: AppDeps, auth: AuthServices): Router {
  const r = Router();
  r.use('/api/keys', corsAllowList(deps.config.auth.cors));
  r.use('/api/keys', (_req, res, next) => {
    res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' });
    next();
  });
  r.use('/api/keys', async (req: Request, res: Response, next: NextFunction) => {
    try {
      const claims = await auth.signIn.authenticate(req.headers.authorization, { actor: 'anonymous', requestId: req.requestId }, req.ip);
      req.caller = { userId: claims.sub, clientId: claims.client_id };
      next();
    } catch (err) {
      res.set('WWW-Authenticate', BEARER_CHALLENGE);
      next(err);
    }
  });
  r.use('/api/keys', express.json({ limit: deps.config.server.maxBodyBytes, strict: true, verify: (req, _res, buf) => void rawBodies.set(req, buf) }));

  const ops = keyApiOperations(deps);
  const ctxOf = (req: Request): OpContext => ops.ctxOf(req.caller!, req.requestId);
  const refused = (req: Request, err: ValidationError | NotFoundError) => ops.refused(req.caller!, req.requestId, err, req.path);
  const handle = (fn: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) =>
    fn(req, res).catch(async (err: unknown) => {
      if (err instanceof ValidationError) await refused(req, err);
      next(err);
    });

  r.get(
    '/api/keys/me',
    handle(async (req, res) => sendKeys(res, await ops.me(req.caller!, req.requestId))),
  );

  r.post(
    '/api/keys/password-key/unwrap',
    handle(async (req, res) => sendKeys(res, await ops.unwrapPasswordKey(req.caller!, req.requestId, req.body, rawBodies.get(req)))),
  );

  r.post(
    '/api/keys/data-keys/wrap',
    handle(async (req, res) => {
      const body = parse(wrapDataKey, req);
      const key = Buffer.from(body.key, 'base64url');
      try {
        const wrappedKey = await deps.keys.wrapDataKey(req.caller!.userId, key, ctxOf(req), body.label);
        res.json({ wrappedKey });
      } finally {
        key.fill(0);
      }
    }),
  );

  r.post(
    '/api/keys/data-keys/unwrap',
    handle(async (req, res) => {
      const body = parse(unwrapDataKey, req);
      const key = await deps.keys.unwrapDataKey(req.caller!.userId, body.wrappedKey, ctxOf(req), body.label);
      sendKeys(res, { body: { key: key.toString('base64url') }, secrets: [key] });
    }),
  );
  r.use('/api/keys', async (req: Request, _res: Response, next: NextFunction) => {
    const err = new NotFoundError(`no key API route for ${req.method} ${req.path}`);
    await refused(req, err);
    next(err);
  });
  r.use('/api/keys', auditRefusals(deps.store, 'key-api.request'));
  return r;
}
