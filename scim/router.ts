/**
 * The SCIM 2.0 service provider, mounted at /scim/v2. A thin Express router over scimmy (not
 * scimmy-routers, which writes to req.query — read-only in Express 5). Order: bearer auth, per-token
 * rate limit, body size limit and JSON parsing, the endpoint families, SCIM errors.
 */
import express, { Router, type RequestHandler } from 'express';
import type { AppDeps } from '../server/http/app';
import { NotFoundError } from '../server/errors';
import { discoveryRouter } from './discovery';
import { scimErrorHandler } from './errors';
import { scimRefusalAuditOf } from './refusal-audit';
import { groupsRouter } from './groups';
import { checkPatchStrings } from './limits';
import { rateLimitPerToken } from './rate-limit';
import { ApiTokenRepository } from './repositories/api-tokens';
import { rateLimitHits } from '../server/repositories/rate-limit-hits';
import { tokenReads } from './repositories/token-reads';
import { ownWrites } from '../server/repositories/runner';
import { ScimService } from './service';
import { TokenService } from './tokens';
import { usersRouter } from './users';

export const SCIM_BASE_PATH = '/scim/v2';

/**
 * SCIM bodies are JSON whatever the label: JSON media types, and — as older Okta versions send
 * them — no Content-Type or text/plain. Other types stay unparsed and are refused as invalidSyntax.
 */
function isJsonBody(req: { headers: Record<string, string | string[] | undefined> }): boolean {
  const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  return type === '' || type === 'text/plain' || type === 'application/json' || /^application\/[\w.-]+\+json$/.test(type);
}

export function scimServiceFor(deps: AppDeps): ScimService {
  return new ScimService(deps.store, deps.keys, {
    outbox: deps.config.scim.webhook !== undefined || deps.config.backend.changeFeed,
    feedOnly: deps.config.scim.webhook === undefined,
    userDeleteRetentionDays: deps.config.scim.userDeleteRetentionDays,
    basepath: SCIM_BASE_PATH,
  });
}

export function scimRouter(deps: AppDeps): Router {
  const tokens = new TokenService(ownWrites(deps.store, (m) => new ApiTokenRepository(m)), tokenReads(deps.store));
  const service = scimServiceFor(deps);
  const r = Router();
  const auth: RequestHandler = async (req, res, next) => {
    try {
      res.locals.scimToken = await tokens.authenticate(req.get('authorization'), 'scim', req.ip);
      next();
    } catch (err) {
      next(err);
    }
  };
  // Responses carry wrapped keys and personal data: never cached by intermediaries.
  r.use((_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
  const base = deps.config.scim.baseUrl;
  if (base) {
    r.use((_req, res, next) => {
      res.locals.scimBaseUrl = base;
      next();
    });
  }
  r.use(auth);
  r.use(rateLimitPerToken({ perMinute: deps.config.scim.rateLimitPerMinute, hits: rateLimitHits(deps.store) }));
  r.use(express.json({ limit: deps.config.scim.maxBodyBytes, type: isJsonBody, strict: true }));
  // PostgreSQL refuses NUL in text: an id holding one names no resource; a PATCH carrying one is refused whole.
  r.use((req, _res, next) => next(/%00/.test(req.path) ? new NotFoundError('no SCIM resource has that id') : undefined));
  r.use((req, _res, next) => {
    if (req.method === 'PATCH') checkPatchStrings(req.body);
    next();
  });
  r.use(discoveryRouter());
  r.use('/Users', usersRouter(service));
  r.use('/Groups', groupsRouter(service, deps.config.scim.groupPatchResponse));
  r.use((req, _res, next) => next(new NotFoundError(`no SCIM endpoint for ${req.method} ${req.path}`)));
  const refusals = scimRefusalAuditOf(deps.store, { onError: (err) => deps.log.warn({ err: { message: (err as Error)?.message } }, 'scim refusal not audited') });
  r.use(scimErrorHandler(deps.log, (req, res, mapped) => refusals.refused(req, (res.locals.scimToken as { id: string } | undefined)?.id, mapped)));
  return r;
}
