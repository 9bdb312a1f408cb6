import { Router } from 'express';
import type { AppDeps } from '../app';
import type { AuthServices } from '../../auth';
import { corsAllowList } from '../cors';

/**
 * Public discovery: the token-signing keys (JWK Set, RFC 7517) and the authorization server
 * metadata (RFC 8414) so clients and the cloud service can verify tokens and find the endpoints.
 */
export function jwksRoutes(deps: AppDeps, auth: AuthServices): Router {
  const r = Router();
  const a = deps.config.auth;
  r.use('/.well-known', corsAllowList(a.cors));
  r.get('/.well-known/jwks.json', async (_req, res, next) => {
    try {
      res.set('Cache-Control', 'public, max-age=60').type('application/jwk-set+json').send(JSON.stringify(await auth.signingKeys.jwks()));
    } catch (err) {
      next(err);
    }
  });
  r.get('/.well-known/oauth-authorization-server', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=300').json({
      issuer: a.tokens.issuer,
      authorization_endpoint: `${a.publicUrl}/oauth/authorize`,
      token_endpoint: `${a.publicUrl}/oauth/token`,
      jwks_uri: `${a.publicUrl}/.well-known/jwks.json`,
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['none'],
      authorization_response_iss_parameter_supported: true,
    });
  });
  return r;
}
