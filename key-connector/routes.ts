import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { AppDeps } from '../server/http/app';
import type { OpContext } from '../server/keys/types';
import { UnauthorizedError, ValidationError } from '../server/errors';
import { toAppError } from '../server/http/problem';
import { corsAllowList } from '../server/http/cors';
import { duplicateMemberName } from '../server/http/json-duplicates';
import type { KeyConnectorConfig } from '../server/config/key-connector';
import { InvalidTokenError, OidcVerifier } from './oidc';
import { IssuerKeyVerifier } from './issuer-key';
import { KeyConnectorService } from './service';

/**
 * Bitwarden's Key Connector API (bitwarden/key-connector: Controllers/UserKeysController.cs,
 * MiscController.cs), as its clients call it (bitwarden/clients libs/common/src/services/api.service.ts):
 * GET/POST/PUT `<url>/user-keys` with `Authorization: Bearer <identity-server JWT>` and
 * `{"key": "<base64>"}`; `GET <url>/alive` and `<url>/now` without auth. The user is the token's
 * `sub`, never anything in the request. Errors are problem+json through the app's one mapper.
 */
declare module 'express-serve-static-core' {
  interface Request {
    /** Set by the Key Connector's Bearer middleware. */
    keyConnectorSub?: string;
    keyConnectorEmail?: string;
  }
}

const MAX_KEY_BYTES = 1024;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Request headers the Bitwarden clients send (api.service.ts fetch()): preflights must allow them. */
const CLIENT_HEADERS = ['Authorization', 'Content-Type', 'Accept', 'Bitwarden-Client-Name', 'Bitwarden-Client-Version', 'Cache-Control', 'Pragma', 'Device-Type'];

const rawBodies = new WeakMap<object, Buffer>();

/** `key` or `Key` (ASP.NET binds case-insensitively), standard base64 of 1..1024 bytes. */
function keyFrom(req: Request): Buffer {
  const raw = rawBodies.get(req);
  const duplicate = raw ? duplicateMemberName(raw.toString('utf8')) : undefined;
  if (duplicate !== undefined) throw new ValidationError(`invalid request body: ${duplicate.slice(0, 64)} appears more than once`, [{ path: duplicate.slice(0, 64), message: 'appears more than once' }]);
  const body: unknown = req.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ValidationError('the request body must be a JSON object {"key": "<base64>"}', [{ path: '(body)', message: 'must be a JSON object' }]);
  const names = Object.keys(body).filter((k) => k.toLowerCase() === 'key');
  if (names.length !== 1) throw new ValidationError(names.length ? 'give "key" once (names are case-insensitive)' : '"key" is required', [{ path: 'key', message: names.length ? 'appears more than once' : 'is required' }]);
  const value = (body as Record<string, unknown>)[names[0]];
  if (typeof value !== 'string' || value.length === 0 || !BASE64.test(value)) throw new ValidationError('"key" must be standard base64', [{ path: 'key', message: 'must be standard base64 (RFC 4648 §4, padded)' }]);
  if ((value.length / 4) * 3 - (value.endsWith('==') ? 2 : value.endsWith('=') ? 1 : 0) > MAX_KEY_BYTES) {
    throw new ValidationError(`"key" must decode to at most ${MAX_KEY_BYTES} bytes`, [{ path: 'key', message: `at most ${MAX_KEY_BYTES} bytes` }]);
  }
  return Buffer.from(value, 'base64');
}

export function keyConnectorRoutes(deps: AppDeps, settings: KeyConnectorConfig): Router {
  const service = new KeyConnectorService(deps.store, deps.kms, deps.config.kms.kekUri, settings.refuseDeactivated);
  const verifier = settings.issuerPublicKey ? new IssuerKeyVerifier(settings.issuer, settings.issuerPublicKey) : new OidcVerifier(settings.issuer);
  const r = Router();
  r.use(corsAllowList({ origins: settings.webVaultOrigin ? [settings.webVaultOrigin] : [], maxAgeSeconds: deps.config.auth.cors.maxAgeSeconds, methods: ['GET', 'POST', 'PUT'], headers: CLIENT_HEADERS }));

  // Key Connector answers a bare JSON date string (DateTime.UtcNow); clients only check for 200.
  const now = (_req: Request, res: Response) => void res.set('Cache-Control', 'no-store').json(new Date().toISOString());
  r.get('/alive', now);
  r.get('/now', now);

  const ctxOf = (req: Request): OpContext => ({ actor: req.keyConnectorSub ? `key-connector:${req.keyConnectorSub}` : 'key-connector:anonymous', requestId: req.requestId });
  /** Records a refusal the service never saw (token, body), then hands the error to the app's mapper. */
  const refused = (req: Request, err: unknown, reason?: string) => {
    const e = toAppError(err);
    return deps.store
      .audit({ ...ctxOf(req), action: 'key-connector.request', outcome: e.kind === 'user' ? 'refused' : 'failure', targetType: 'key-connector-user', targetId: req.keyConnectorSub, detail: { error: e.code, ...(reason ? { reason } : {}), method: req.method, path: req.path.slice(0, 200) } })
      .catch(() => undefined);
  };

  r.use('/user-keys', (_req, res, next) => {
    res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' });
    next();
  });
  r.use('/user-keys', async (req: Request, res: Response, next: NextFunction) => {
    try {
      const m = /^Bearer ([A-Za-z0-9_.~+/=-]+)$/.exec(req.headers.authorization ?? '');
      if (!m) throw new InvalidTokenError('missing', 'send Authorization: Bearer <access token from the identity server>');
      const caller = await verifier.verify(m[1]);
      req.keyConnectorSub = caller.sub;
      req.keyConnectorEmail = caller.email;
      next();
    } catch (err) {
      if (err instanceof UnauthorizedError) res.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      await refused(req, err, err instanceof InvalidTokenError ? err.reason : undefined);
      next(err);
    }
  });
  r.use('/user-keys', express.json({ limit: 8 * 1024, strict: true, verify: (req, _res, buf) => void rawBodies.set(req, buf) }));
  r.use('/user-keys', (err: unknown, req: Request, _res: Response, next: NextFunction) => {
    // A body that did not parse (malformed JSON, too large) after the token was accepted.
    if (req.keyConnectorSub) void refused(req, err).then(() => next(err));
    else next(err);
  });

  /** Service errors are audited by the service; body errors here. */
  const handle = (fn: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) =>
    fn(req, res).catch(async (err: unknown) => {
      if (err instanceof ValidationError) await refused(req, err);
      next(err);
    });

  r.get(
    '/user-keys',
    handle(async (req, res) => {
      const key = await service.get(req.keyConnectorSub!, ctxOf(req), req.keyConnectorEmail);
      try {
        res.json({ key: key.toString('base64') });
      } finally {
        key.fill(0);
      }
    }),
  );
  const write = (op: 'create' | 'put') =>
    handle(async (req, res) => {
      try {
        const key = keyFrom(req);
        try {
          await service[op](req.keyConnectorSub!, key, ctxOf(req));
        } finally {
          key.fill(0);
        }
      } finally {
        rawBodies.get(req)?.fill(0); // the raw body carried the key in base64
      }
      res.status(200).end();
    });
  r.post('/user-keys', write('create'));
  r.put('/user-keys', write('put'));
  return r;
}
