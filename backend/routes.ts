/**
 * The cloud service's own API at /backend/v1 (issue 11; docs/backend-api.md). Bearer token of
 * scope `backend` (optionally bound to client addresses); every call audited with the token's
 * name; every POST accepts an Idempotency-Key; group reads carry an ETag and writes honour If-Match.
 * Errors are RFC 7807 problem+json (server/http/problem.ts).
 */
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { z } from 'zod';
import type { AppDeps } from '../server/http/app';
import { NotFoundError, ValidationError } from '../server/errors';
import { toAppError } from '../server/http/problem';
import type { OpContext } from '../server/keys/types';
import { ownWrites } from '../server/repositories/runner';
import { ApiTokenRepository } from '../scim/repositories/api-tokens';
import { tokenReads } from '../scim/repositories/token-reads';
import { TokenService, type PublicTokenInfo } from '../scim/tokens';
import { BACKEND_BASE_PATH } from './base-path';
import { ChangeFeed } from './changes';
import { Idempotency, requestHash, type Execute } from './idempotency';
import { ChangesRepository } from './repositories/changes';
import { IdempotencyRepository } from './repositories/idempotency';
import { ChangesQuery, CreateGroupBody, CreateUserBody, GroupsQuery, LookupBody, UpdateGroupBody, type Group, type User } from './schemas';
import { BackendService, etagOf, type InTransaction } from './service';

export { BACKEND_BASE_PATH };

/** The POST routes below (Idempotency-Key applies to these). */
const POST_PATHS = new Set(['/public-keys/lookup', '/users', '/groups']);

interface Locals {
  token?: PublicTokenInfo;
  /** This request's Idempotency-Key claim, until its response is stored. */
  idem?: Execute;
}
const locals = (res: Response): Locals => res.locals as Locals;

/** A stored (idempotent) response: status, body and the headers that make it whole. */
interface Stored {
  body: unknown;
  headers: Record<string, string>;
}

const groupHeaders = (g: Group): Record<string, string> => ({ ETag: etagOf(g.version), Location: `${BACKEND_BASE_PATH}/groups/${g.id}` });
const userHeaders = (u: User): Record<string, string> => ({ Location: `${BACKEND_BASE_PATH}/users/${u.id}` });

/**
 * For a writing POST: stores its Idempotency-Key response inside the write's own transaction, so a
 * crash leaves either both (a retry replays) or neither (a retry runs it). None without a key.
 */
function storedWithWrite<T>(res: Response, status: number, headers: (v: T) => Record<string, string>): InTransaction<T> | undefined {
  const idem = locals(res).idem;
  return idem && ((tx, v) => idem.completeIn(tx.manager, status, { body: v, headers: headers(v) } satisfies Stored));
}

/** The response is stored (with the write, or by reply): nothing left to store or release. */
const markStored = (res: Response) => {
  locals(res).idem = undefined;
};

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body ?? {});
  if (!r.success) {
    const issues = r.error.issues.map((i) => ({ path: i.path.join('.') || '(body)', message: i.message }));
    throw new ValidationError(`invalid request body: ${issues.slice(0, 10).map((i) => `${i.path} ${i.message}`).join('; ')}`, issues.slice(0, 50));
  }
  return r.data;
}

export function backendServiceFor(deps: AppDeps): BackendService {
  return new BackendService(deps.store, deps.keys, {
    outbox: deps.config.scim.webhook !== undefined || deps.config.backend.changeFeed,
    feedOnly: deps.config.scim.webhook === undefined,
  });
}

export function backendRoutes(deps: AppDeps): Router {
  const tokens = new TokenService(ownWrites(deps.store, (m) => new ApiTokenRepository(m)), tokenReads(deps.store));
  const idempotency = new Idempotency(ownWrites(deps.store, (m) => new IdempotencyRepository(m)));
  const service = backendServiceFor(deps);
  const changes = new ChangeFeed((fn) => fn(new ChangesRepository(deps.store.dataSource.manager)));
  const r = Router();

  const actor = (res: Response) => `backend:${locals(res).token!.name}`;
  const ctxOf = (req: Request, res: Response): OpContext => ({ actor: actor(res), requestId: req.requestId });
  const audit = (req: Request, res: Response, action: string, outcome: 'success' | 'failure', detail: Record<string, string | number>, targetId?: string, targetType = 'group') =>
    deps.store.audit({
      actor: actor(res), action: `backend.${action}`, outcome, requestId: req.requestId, targetType: targetId ? targetType : undefined, targetId,
      detail: { token: locals(res).token!.id, method: req.method, ...detail },
    });

  /**
   * Stores the response for its Idempotency-Key (a call that wrote nothing; writes stored theirs in
   * their transaction, see storedWithWrite), audits the call, then sends it.
   */
  const reply = async (req: Request, res: Response, action: string, status: number, body: unknown, headers: Record<string, string> = {}, targetId?: string, targetType?: string) => {
    const idem = locals(res).idem;
    if (idem) await idem.complete(status, { body, headers } satisfies Stored);
    markStored(res);
    await audit(req, res, action, 'success', { status }, targetId, targetType);
    res.set(headers);
    if (body === undefined) res.status(status).end();
    else res.status(status).json(body);
  };

  // Responses carry wrapped keys and personal data: never cached by intermediaries.
  r.use((_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
  r.use(async (req, res, next) => {
    locals(res).token = await tokens.authenticate(req.get('authorization'), 'backend', req.ip);
    next();
  });
  r.use(express.json({ limit: deps.config.server.maxBodyBytes, strict: true }));
  r.use(async (req, res, next) => {
    const key = req.get('idempotency-key');
    // Only for this API's POST routes: a claim on an unknown path would never be completed or freed.
    // Spelled as the router matches it (any case, one trailing slash), so `/Groups/` is `/groups`.
    const path = req.path.toLowerCase().replace(/(.)\/$/, '$1');
    if (req.method !== 'POST' || key === undefined || !POST_PATHS.has(path)) return next();
    const claim = await idempotency.claim(locals(res).token!.id, key, requestHash(req.method, path, req.body));
    if (claim.kind === 'execute') {
      locals(res).idem = claim;
      return next();
    }
    const saved = claim.body as Stored;
    res.set({ ...saved.headers, 'Idempotent-Replayed': 'true' });
    if (saved.body === undefined) res.status(claim.status).end();
    else res.status(claim.status).json(saved.body);
  });

  r.get('/changes', async (req, res) => {
    if (!deps.config.scim.webhook && !deps.config.backend.changeFeed) {
      throw new NotFoundError('the change feed is off: set CS_BACKEND_CHANGE_FEED=true (or configure a webhook)');
    }
    const q = parse(ChangesQuery, req.query);
    await reply(req, res, 'changes.read', 200, await changes.page(q.after, q.limit));
  });

  r.post('/public-keys/lookup', async (req, res) => {
    const result = await service.lookupPublicKeys(parse(LookupBody, req.body));
    await reply(req, res, 'keys.lookup', 200, result);
  });

  r.post('/users', async (req, res) => {
    const { created, user } = await service.createUser(parse(CreateUserBody, req.body), ctxOf(req, res), storedWithWrite(res, 201, userHeaders));
    if (created) markStored(res); // an existing user wrote nothing: reply stores the 200
    await reply(req, res, created ? 'user.create' : 'user.existing', created ? 201 : 200, user, userHeaders(user), user.id, 'user');
  });

  r.get('/users/:id', async (req, res) => {
    const user = await service.getUser(req.params.id);
    await reply(req, res, 'user.read', 200, user, {}, user.id, 'user');
  });

  r.post('/groups', async (req, res) => {
    const group = await service.createGroup(parse(CreateGroupBody, req.body), ctxOf(req, res), storedWithWrite(res, 201, groupHeaders));
    markStored(res);
    await reply(req, res, 'group.create', 201, group, groupHeaders(group), group.id);
  });

  r.get('/groups', async (req, res) => {
    const q = parse(GroupsQuery, req.query);
    await reply(req, res, 'group.list', 200, await service.listGroups(q.after, q.limit, q.origin));
  });

  r.get('/groups/:id', async (req, res) => {
    const group = await service.getGroup(req.params.id);
    await reply(req, res, 'group.read', 200, group, { ETag: etagOf(group.version) }, group.id);
  });

  r.patch('/groups/:id', async (req, res) => {
    const group = await service.updateGroup(req.params.id, parse(UpdateGroupBody, req.body), req.get('if-match'), ctxOf(req, res));
    await reply(req, res, 'group.update', 200, group, { ETag: etagOf(group.version) }, group.id);
  });

  r.delete('/groups/:id', async (req, res) => {
    await service.deleteGroup(req.params.id, req.get('if-match'), ctxOf(req, res));
    await reply(req, res, 'group.delete', 204, undefined, {}, req.params.id);
  });

  // A failed call is audited under the token's name (when it had one) and frees its Idempotency-Key:
  // it wrote nothing, so running it again is safe (release is a no-op once a response is stored, so
  // a failure after the commit never frees the key). The app's problem handler answers.
  r.use(async (err: unknown, req: Request, res: Response, next: NextFunction) => {
    const { token, idem } = locals(res);
    const e = toAppError(err);
    await Promise.all([
      token ? audit(req, res, req.method.toLowerCase(), 'failure', { status: e.status, code: e.code }, typeof req.params?.id === 'string' ? req.params.id : undefined, req.path.startsWith('/users') ? 'user' : 'group') : undefined,
      idem?.release(),
    ]).catch(() => undefined);
    next(err);
  });
  return r;
}
