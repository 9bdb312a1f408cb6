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
    caller?: { userId: string; clientId: string };
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

function parse<T>(schema: z.ZodType<T>, req: Request): T {
  // The raw body can carry a plaintext key (data-keys/wrap): zeroed once checked, like the key.
  const raw = rawBodies.get(req);
  let duplicate: string | undefined;
  if (raw) {
    rawBodies.delete(req);
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
  const r = schema.safeParse(req.body ?? {});
  if (!r.success) {
    const issues = r.error.issues.map((i) => ({ path: i.path.join('.') || '(body)', message: i.message }));
    throw new ValidationError(`invalid request body: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`, issues);
  }
  return r.data;
}

/**
 * Serialises a response holding plaintext key bytes, then zeroes them. Written with `end`, not
 * `res.json`: Express would add an ETag — a hash of the body, i.e. of the key — and spend a SHA-1
 * on every call doing it.
 */
function sendKeys(res: Response, body: Record<string, unknown>, secrets: Buffer[]): void {
  try {
    res.type('application/json').end(JSON.stringify(body));
  } finally {
    for (const s of secrets) s.fill(0);
  }
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
      const claims = await auth.signIn.authenticate(req.headers.authorization, { actor: 'anonymous', requestId: req.requestId });
      req.caller = { userId: claims.sub, clientId: claims.client_id };
      next();
    } catch (err) {
      res.set('WWW-Authenticate', 'Bearer realm="crypto-server", error="invalid_token"');
      next(err);
    }
  });
  r.use('/api/keys', express.json({ limit: deps.config.server.maxBodyBytes, strict: true, verify: (req, _res, buf) => void rawBodies.set(req, buf) }));

  const ctxOf = (req: Request): OpContext => ({ actor: `user:${req.caller!.userId}`, requestId: req.requestId });
  // Refusals the key service records itself (inactive user, unwrap refused, KMS errors) are not
  // repeated here; a body that fails validation or an unknown route never reached it, so they are
  // recorded here.
  const refused = (req: Request, err: ValidationError | NotFoundError) =>
    deps.store
      .audit({ ...ctxOf(req), action: 'key-api.request', outcome: 'refused', targetType: 'user', targetId: req.caller!.userId, detail: { error: err.code, path: req.path.slice(0, 200) } })
      .catch(() => undefined);
  const handle = (fn: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) =>
    fn(req, res).catch(async (err: unknown) => {
      if (err instanceof ValidationError) await refused(req, err);
      next(err);
    });

  r.get(
    '/api/keys/me',
    handle(async (req, res) => {
      const b = await deps.keys.getUserKeyBundle(req.caller!.userId, ctxOf(req));
      sendKeys(
        res,
        {
          userId: b.userId,
          keyAlg: b.keyAlg,
          publicJwk: b.publicJwk,
          privateJwe: b.privateJwe,
          wrappedPasswordKey: b.wrappedPasswordKey,
          passwordKey: b.passwordKey.toString('base64url'),
          groups: b.groups,
        },
        [b.passwordKey],
      );
    }),
  );

  r.post(
    '/api/keys/password-key/unwrap',
    handle(async (req, res) => {
      const body = parse(unwrapPasswordKey, req);
      const pk = await deps.keys.unwrapPasswordKey(req.caller!.userId, ctxOf(req), body.wrappedPasswordKey);
      sendKeys(res, { passwordKey: pk.toString('base64url') }, [pk]);
    }),
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
      sendKeys(res, { key: key.toString('base64url') }, [key]);
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
