import express, { Router, type ErrorRequestHandler } from 'express';
import type { AppDeps } from '../app';
import type { AuthServices } from '../../auth';
import { OAuthError } from '../../auth/errors';
import { AuthorizeRefusedError } from '../../auth/sign-in-service';
import { BadRequestError, InternalError } from '../../errors';
import { corsAllowList } from '../cors';
import { logError, toAppError } from '../problem';
import { signInErrorPage } from '../sign-in-page';
import { auditRefusals } from '../audit-refusals';
import { signInRateLimit } from '../rate-limit';

/**
 * OAuth 2.0 authorization code flow with PKCE (RFC 6749, RFC 7636, RFC 8252):
 * GET /oauth/authorize starts a SAML sign-in for a registered client; POST /oauth/token redeems the
 * one-time code for a short-lived access token. No cookies, no sessions.
 */
export function oauthRoutes(deps: AppDeps, auth: AuthServices): Router {
  const r = Router();
  const ctxOf = (req: express.Request) => ({ actor: 'anonymous', requestId: req.requestId });

  const limit = signInRateLimit(deps.store, deps.config.auth.signInRateLimitPerMinute);
  r.get('/oauth/authorize', limit, async (req, res, next) => {
    try {
      if (['SAMLRequest', 'SAMLResponse', 'RelayState'].some((k) => k in req.query)) {
        await auth.signIn.recordRefusal(ctxOf(req), 'oauth.authorize', { error: 'invalid_request', reason: 'SAML parameters on authorize' });
        throw new AuthorizeRefusedError('invalid_request', 'SAML parameters are not accepted on the authorize endpoint');
      }
      const result = await auth.signIn.checkAuthorize(req.query as Record<string, unknown>, ctxOf(req));
      res.set('Cache-Control', 'no-store');
      if ('errorRedirect' in result) {
        res.redirect(303, result.errorRedirect);
        return;
      }
      auth.saml.bindPending(req, result.pending);
      // Sends the AuthnRequest (HTTP-Redirect binding); its ID is stored with the pending request.
      auth.saml.passport.authenticate('saml', { session: false }, (err: unknown) => {
        next(err ?? new InternalError('the SAML sign-in could not be started'));
      })(req, res, next);
    } catch (err) {
      next(err);
    }
  });
  r.use('/oauth/authorize', signInErrorPage(deps.log));

  r.use('/oauth/token', corsAllowList(deps.config.auth.cors));
  r.post('/oauth/token', limit, express.urlencoded({ extended: false, limit: 16 * 1024, parameterLimit: 16 }), async (req, res, next) => {
    try {
      if (!req.is('application/x-www-form-urlencoded')) {
        await auth.signIn.recordRefusal(ctxOf(req), 'oauth.token', { error: 'invalid_request', reason: 'not form-encoded' });
        throw new OAuthError('invalid_request', 'the token request must be application/x-www-form-urlencoded');
      }
      const token = await auth.signIn.redeemCode((req.body ?? {}) as Record<string, unknown>, ctxOf(req), req.headers.origin);
      res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' }).json(token);
    } catch (err) {
      next(err);
    }
  });
  r.use('/oauth/token', auditRefusals(deps.store, 'oauth.token'));
  r.use('/oauth/token', tokenErrors(deps));
  return r;
}

/**
 * The token endpoint answers in the format RFC 6749 §5.2 fixes ({error, error_description}),
 * which OAuth client libraries parse; mapping and logging are the shared ones.
 */
function tokenErrors(deps: AppDeps): ErrorRequestHandler {
  return (err, req, res, next) => {
    const e = toAppError(err);
    if (!(e instanceof OAuthError) && !(e instanceof BadRequestError)) return next(err);
    logError(deps.log, req, err, e);
    const code = e instanceof OAuthError ? e.code : 'invalid_request';
    res
      .status(code === 'invalid_client' ? 401 : 400)
      .set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' })
      .json({ error: code, error_description: e.message, requestId: req.requestId });
  };
}
