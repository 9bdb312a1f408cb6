import { createHash, randomBytes } from 'node:crypto';
import express, { Router, type ErrorRequestHandler, type Request, type Response } from 'express';
import { z } from 'zod';
import type { AppDeps } from '../server/http/app';
import type { AuthServices } from '../server/auth';
import { codeDigest, verifyPkce } from '../server/auth/pkce';
import { InternalError, ValidationError } from '../server/errors';
import { logError, toAppError } from '../server/http/problem';
import { signInRateLimit } from '../server/http/rate-limit';
import { auditEventJson } from '../server/audit/search';
import { html, page, type Html } from './html';
import { ConsoleServices } from './services';
import { cookie, csrfMatches, mintSession, readCookie, readSession, SESSION_COOKIE, SIGN_IN_COOKIE, type AdminSession, type SessionOptions } from './session';
import { CONSOLE_CSS } from './assets/console-css';
import { CONSOLE_JS } from './assets/console-js';
import { startPage } from './pages/start';
import { statusPage } from './pages/status';
import { provisioningPage } from './pages/provisioning';
import { signInsPage } from './pages/sign-ins';
import { auditFiltersOf, auditPage } from './pages/audit';
import { tokensPage } from './pages/tokens';

/** The client id console sign-ins carry through the SAML round trip; never a registered OAuth client. */
export const ADMIN_CLIENT_ID = 'crypto-server-admin';

/** Routes reachable without an administrator's session (everything else is checked, test/admin/access.test.ts). */
export const PUBLIC_ROUTES = ['GET /assets/console.css', 'GET /assets/console.js', 'GET /login', 'GET /auth/complete'] as const;

interface Signed {
  session: AdminSession;
  who: string;
  userId: string;
}

declare module 'express-serve-static-core' {
  interface Locals {
    admin?: Signed;
  }
}

const createTokenForm = z.object({
  csrf: z.string(),
  name: z.string().trim().min(1, 'name: must not be empty').max(200, 'name: must be at most 200 characters'),
  scope: z.string(),
  expiresDays: z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      if (!v) return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 3650) {
        ctx.addIssue({ code: 'custom', message: 'expires after: must be a whole number of days from 1 to 3650' });
        return z.NEVER;
      }
      return n;
    }),
  allowFrom: z.string().trim().optional().transform((v) => v || undefined),
});

/**
 * The administrator's console at /admin: server-rendered pages over the console's one seam
 * (services.ts). Sign-in goes through the SAML IdP like any client's; the session is a signed,
 * HttpOnly, SameSite=Strict cookie; every request re-checks admin rights; every POST form carries
 * the session's CSRF token. Until SAML is configured, only the setup checklist is shown.
 */
export function adminRoutes(deps: AppDeps, auth: AuthServices): Router {
  const svc = new ConsoleServices({ ...deps, auth });
  svc.latency.start();
  auth.signIn.adminSignIn = { clientId: ADMIN_CLIENT_ID, grantedByAttribute: (p) => svc.access.grantedByAttribute(p) };
  const cfg = deps.config;
  const sessionOptions: SessionOptions = { issuer: cfg.auth.tokens.issuer, audience: `${cfg.auth.publicUrl}/admin`, minutes: cfg.admin.sessionMinutes };
  const completeUrl = `${cfg.auth.publicUrl}/admin/auth/complete`;
  const ctxOf = (req: Request, actor = 'anonymous') => ({ actor, requestId: req.requestId });
  const secure = (req: Request) => req.secure;
  const send = (res: Response, status: number, title: string, body: Html, path?: string) => {
    const a = res.locals.admin;
    res.status(status).type('html').send(page({ title, path, session: a ? { who: a.who, csrf: a.session.csrf } : undefined }, body));
  };
  const refusal = (res: Response, status: 401 | 403, title: string, message: string, signInLink: boolean) =>
    send(res, status, title, html`<p id="reason">${message}</p>${signInLink && svc.samlConfigured ? html`<p><a href="/admin/login">Sign in</a></p>` : ''}`);

  const r = Router();
  r.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  r.get('/assets/console.css', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=300').type('text/css').send(CONSOLE_CSS);
  });
  r.get('/assets/console.js', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=300').type('text/javascript').send(CONSOLE_JS);
  });

  // ---- sign-in: SAML round trip bound to this browser, then a session cookie ----------------
  const limit = signInRateLimit(deps.store, cfg.auth.signInRateLimitPerMinute);
  r.get('/login', limit, (req, res, next) => {
    if (!svc.samlConfigured) return res.redirect(303, '/admin/');
    const nonce = randomBytes(32).toString('base64url');
    res.append('Set-Cookie', cookie(SIGN_IN_COOKIE, nonce, { maxAgeSeconds: cfg.auth.saml.requestTtlSeconds, secure: secure(req), sameSite: 'Lax' }));
    auth.saml.bindPending(req, { clientId: ADMIN_CLIENT_ID, redirectUri: completeUrl, codeChallenge: createHash('sha256').update(nonce).digest('base64url') });
    auth.saml.passport.authenticate('saml', { session: false }, (err: unknown) => next(err ?? new InternalError('the SAML sign-in could not be started')))(req, res, next);
  });

  // The IdP's POST reaches /auth/saml/acs (shared with client sign-ins), which redirects here with a code.
  r.get('/auth/complete', limit, async (req, res, next) => {
    try {
      const refuse = async (reason: string, status: 400 | 403, message: string, userId?: string) => {
        await deps.store.audit({ ...ctxOf(req, userId ? `user:${userId}` : 'anonymous'), action: 'admin.login', outcome: 'refused', ...(userId ? { targetType: 'user', targetId: userId } : {}), detail: { reason } });
        refusal(res, status as 403, status === 403 ? 'Not an administrator' : 'Sign-in refused', message, status === 400);
      };
      res.append('Set-Cookie', cookie(SIGN_IN_COOKIE, '', { maxAgeSeconds: 0, secure: secure(req), sameSite: 'Lax' }));
      const code = typeof req.query.code === 'string' && req.query.code.length <= 128 ? req.query.code : undefined;
      if (!code) return await refuse('code missing', 400, 'This sign-in link is incomplete; sign in again.');
      const redeemed = await deps.store.writeNow((t) => t.authCodes.redeem(codeDigest(code), new Date()));
      if (!redeemed.ok) return await refuse(`code ${redeemed.reason}`, 400, 'This sign-in link was already used or has expired; sign in again.');
      const c = redeemed.code;
      if (!c.clientId.startsWith(ADMIN_CLIENT_ID) || c.redirectUri !== completeUrl) return await refuse('code issued to another client', 400, 'This sign-in was not started by the console; sign in again.');
      if (!verifyPkce(readCookie(req.headers.cookie, SIGN_IN_COOKIE), c.codeChallenge)) {
        return await refuse('sign-in started in another browser', 400, 'This sign-in was started in another browser (or its cookie expired); sign in again from this one.');
      }
      const byAttribute = c.clientId === `${ADMIN_CLIENT_ID}+attribute`;
      const { token, session } = await mintSession(auth.signingKeys, sessionOptions, { userId: c.userId, byAttribute }, ctxOf(req, `user:${c.userId}`));
      const access = await svc.access.check(session);
      if (!access.ok) return await refuse(access.reason, 403, `You are signed in, but not as an administrator of this Crypto Server: ${access.reason}.`, c.userId);
      await deps.store.audit({ ...ctxOf(req, `user:${c.userId}`), action: 'admin.login', outcome: 'success', targetType: 'user', targetId: c.userId, detail: { by: byAttribute ? 'attribute' : 'group' } });
      res.append('Set-Cookie', cookie(SESSION_COOKIE, token, { maxAgeSeconds: cfg.admin.sessionMinutes * 60, secure: secure(req), sameSite: 'Strict' }));
      // A page, not a redirect: the IdP's cross-site POST started this navigation, and a browser
      // sends a SameSite=Strict cookie only on a navigation this origin starts itself.
      res
        .status(200)
        .type('html')
        .send(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/admin/"><title>Signed in · Crypto Server</title><link rel="stylesheet" href="/admin/assets/console.css"></head><body><main><p>Signed in. <a id="continue" href="/admin/">Continue to the console</a></p></main></body></html>`);
    } catch (err) {
      next(err);
    }
  });

  // ---- everything below needs an administrator (or, before SAML is set up, is the checklist) --
  const form = express.urlencoded({ extended: false, limit: 8 * 1024, parameterLimit: 16 });
  r.use(async (req, res, next) => {
    try {
      if (!svc.samlConfigured) {
        if (req.method === 'GET' && req.path === '/') return send(res, 200, 'Set up Crypto Server', await startPage(svc, false), '/admin/');
        return refusal(res, 401, 'Sign-in is not configured', 'The console needs SAML sign-in: configure the identity provider (see the start page) and restart.', false);
      }
      let read = await readSession(auth.signingKeys, sessionOptions, readCookie(req.headers.cookie, SESSION_COOKIE));
      if ('session' in read && (await svc.revocations.isRevoked(read.session.jti))) read = { refused: 'signed out' };
      if ('refused' in read) {
        if (readCookie(req.headers.cookie, SESSION_COOKIE) !== undefined) res.append('Set-Cookie', cookie(SESSION_COOKIE, '', { maxAgeSeconds: 0, secure: secure(req), sameSite: 'Strict' }));
        if (req.method === 'GET') return res.redirect(303, '/admin/login');
        return refusal(res, 401, 'Sign-in required', `Sign in to the console first (${read.refused}).`, true);
      }
      const access = await svc.access.check(read.session);
      if (!access.ok) {
        await deps.store.audit({ ...ctxOf(req, `user:${read.session.userId}`), action: 'admin.access', outcome: 'refused', targetType: 'user', targetId: read.session.userId, detail: { reason: access.reason, path: req.path.slice(0, 100) } });
        return refusal(res, 403, 'Not an administrator', `You are signed in, but not as an administrator of this Crypto Server: ${access.reason}.`, false);
      }
      res.locals.admin = { session: read.session, who: access.user.userName, userId: access.user.id };
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        form(req, res, (err?: unknown) => {
          if (err) return next(err);
          if (!csrfMatches(read.session, (req.body as Record<string, unknown> | undefined)?.csrf)) {
            void deps.store
              .audit({ ...ctxOf(req, `user:${read.session.userId}`), action: 'admin.csrf', outcome: 'refused', detail: { path: req.path.slice(0, 100) } })
              .catch(() => undefined)
              .finally(() => refusal(res, 403, 'Form expired', 'This form did not carry this session\'s token (it came from another page or an old session). Reload the page and try again.', false));
            return;
          }
          next();
        });
        return;
      }
      next();
    } catch (err) {
      next(err);
    }
  });

  const admin = (res: Response) => res.locals.admin!;
  const actor = (res: Response) => `user:${admin(res).userId}`;
  const get = (path: string, title: string, body: (req: Request, res: Response) => Promise<Html>) =>
    r.get(path, async (req, res, next) => {
      try {
        send(res, 200, title, await body(req, res), path === '/' ? '/admin/' : `/admin${path}`);
      } catch (err) {
        next(err);
      }
    });

  get('/', 'Start', () => startPage(svc, true));
  get('/status', 'Status', () => statusPage(svc));
  get('/provisioning', 'Provisioning', (_req, res) => provisioningPage(svc, admin(res).session.csrf));
  get('/sign-ins', 'Sign-ins', () => signInsPage(svc));
  get('/audit', 'Audit', (req) => auditPage(svc, req.query as Record<string, unknown>));
  get('/tokens', 'Tokens', (_req, res) => tokensPage(svc, admin(res).session.csrf));

  r.get('/audit/export', async (req, res, next) => {
    try {
      const filters = auditFiltersOf(req.query as Record<string, unknown>);
      let started = false;
      const count = await svc.auditStream(filters, async (row) => {
        if (!started) {
          res.status(200).type('application/x-ndjson').set('Content-Disposition', `attachment; filename="audit-${new Date().toISOString().slice(0, 10)}.jsonl"`);
          started = true;
        }
        if (!res.write(`${JSON.stringify(auditEventJson(row))}\n`)) await new Promise((resolve) => res.once('drain', resolve));
      });
      if (!started) res.status(200).type('application/x-ndjson').set('Content-Disposition', 'attachment; filename="audit.jsonl"');
      res.end();
      await deps.store.audit({ ...ctxOf(req, actor(res)), action: 'admin.audit.export', outcome: 'success', detail: { rows: count, filters: JSON.stringify(filters).slice(0, 500) } }).catch(() => undefined);
    } catch (err) {
      if (res.headersSent) return res.destroy(err as Error);
      next(err);
    }
  });

  r.post('/tokens', async (req, res, next) => {
    try {
      const parsed = createTokenForm.safeParse(req.body ?? {});
      if (!parsed.success) throw new ValidationError(parsed.error.issues.map((i) => i.message).join('; '));
      const { name, scope, expiresDays, allowFrom } = parsed.data;
      const expiresAt = expiresDays ? new Date(Date.now() + expiresDays * 86_400_000) : undefined;
      const { info, revealId } = await svc.createToken(admin(res).session.jti, { name, scope, expiresAt, allowedAddresses: allowFrom });
      await deps.store.audit({ ...ctxOf(req, actor(res)), action: 'admin.token.create', outcome: 'success', targetType: 'token', targetId: info.id, detail: { scope: info.scope, name: info.name } });
      // Post/Redirect/Get: a reload of the page that shows the token cannot create a second one.
      res.redirect(303, `/admin/tokens/created/${revealId}`);
    } catch (err) {
      const e = toAppError(err);
      if (e.status !== 400) return next(err);
      await deps.store.audit({ ...ctxOf(req, actor(res)), action: 'admin.token.create', outcome: 'refused', detail: { reason: e.message.slice(0, 300) } }).catch(() => undefined);
      send(res, 400, 'Tokens', await tokensPage(svc, admin(res).session.csrf, undefined, e.message).catch(() => html`<p class="error">${e.message}</p>`), '/admin/tokens');
    }
  });

  r.get('/tokens/created/:id', async (req, res, next) => {
    try {
      const created = await svc.reveals.take(admin(res).session.jti, String(req.params.id));
      const notice = created ? undefined : 'This token was already shown (or two minutes have passed, or it was created in another session); it is never shown again. Revoke it and create a new one if it was not copied.';
      send(res, 200, 'Tokens', await tokensPage(svc, admin(res).session.csrf, created, undefined, notice), '/admin/tokens');
    } catch (err) {
      next(err);
    }
  });

  r.post('/tokens/:id/revoke', async (req, res, next) => {
    try {
      const id = String(req.params.id);
      if (!/^[0-9a-f]{24}$/.test(id)) throw new ValidationError('not a token id');
      const { revoked } = await svc.tokens.revoke(id);
      await deps.store.audit({ ...ctxOf(req, actor(res)), action: 'admin.token.revoke', outcome: revoked.length ? 'success' : 'refused', targetType: 'token', targetId: id, ...(revoked.length ? {} : { detail: { reason: 'no active token with this id' } }) });
      res.redirect(303, '/admin/tokens');
    } catch (err) {
      next(err);
    }
  });

  r.post('/outbox/:seq/retry', async (req, res, next) => {
    try {
      const seq = Number(req.params.seq);
      if (!Number.isInteger(seq) || seq < 1) throw new ValidationError('not an outbox event number');
      const retried = await svc.retryDelivery(seq);
      await deps.store.audit({ ...ctxOf(req, actor(res)), action: 'admin.outbox.retry', outcome: retried ? 'success' : 'refused', targetType: 'outbox', targetId: String(seq), ...(retried ? {} : { detail: { reason: 'no pending event with this number' } }) });
      res.redirect(303, '/admin/provisioning');
    } catch (err) {
      next(err);
    }
  });

  r.post('/logout', async (req, res, next) => {
    try {
      // Revoked in the database first: a copy of the cookie must stop working on every replica.
      await svc.revocations.revoke(admin(res).session.jti, admin(res).session.expiresAt);
    } catch (err) {
      return next(err);
    }
    res.append('Set-Cookie', cookie(SESSION_COOKIE, '', { maxAgeSeconds: 0, secure: secure(req), sameSite: 'Strict' }));
    await deps.store.audit({ ...ctxOf(req, actor(res)), action: 'admin.logout', outcome: 'success', targetType: 'user', targetId: admin(res).userId }).catch(() => undefined);
    res.locals.admin = undefined;
    send(res, 200, 'Signed out', html`<p>You are signed out of the console.</p><p><a href="/admin/login">Sign in again</a></p>`);
  });

  r.use(consoleErrors(deps));
  return r;
}

/** Errors as a console page: the shared mapping and logging (toAppError, logError), HTML presentation. */
function consoleErrors(deps: AppDeps): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const e = toAppError(err);
    logError(deps.log, req, err, e);
    const message = e.status >= 500 ? 'The console could not complete this request; the server log has the details.' : e.message;
    res
      .status(e.status)
      .type('html')
      .send(page({ title: e.status >= 500 ? 'Something went wrong' : 'Request refused', session: res.locals.admin ? { who: res.locals.admin.who, csrf: res.locals.admin.session.csrf } : undefined }, html`<p id="reason">${message}</p><p class="note">Reference: <code>${req.requestId ?? ''}</code></p>`));
  };
}
