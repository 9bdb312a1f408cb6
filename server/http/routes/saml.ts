import express, { Router } from 'express';
import type { AppDeps } from '../app';
import type { AuthServices } from '../../auth';
import { asAppError } from '../../errors';
import { SamlRefusedError } from '../../auth/errors';
import { signInRateLimit } from '../rate-limit';
import { decodeSamlResponse, MAX_SAML_RESPONSE_LENGTH, statusProblem } from '../../auth/saml-checks';
import type { Profile } from '@node-saml/node-saml';
import { signInErrorPage } from '../sign-in-page';
import { auditRefusals } from '../audit-refusals';

/**
 * SAML 2.0 SP endpoints: metadata for the administrator, and the assertion consumer (HTTP-POST
 * binding). Sign-in is started by /oauth/authorize (oauth.ts), which sends the AuthnRequest.
 */
export function samlRoutes(deps: AppDeps, auth: AuthServices): Router {
  const r = Router();

  r.get('/auth/saml/metadata', (_req, res) => {
    res.type('application/samlmetadata+xml').set('Cache-Control', 'public, max-age=300').send(auth.saml.metadata());
  });

  r.post(
    '/auth/saml/acs',
    signInRateLimit(deps.store, deps.config.auth.signInRateLimitPerMinute),
    express.urlencoded({ extended: false, limit: MAX_SAML_RESPONSE_LENGTH + 8 * 1024, parameterLimit: 8 }),
    async (req, res, next) => {
      const ctx = { actor: 'saml', requestId: req.requestId };
      const refuse = async (reason: string, message: string): Promise<never> => {
        await auth.signIn.recordRefusal(ctx, 'saml.login', { reason, error: 'saml_refused' });
        throw new SamlRefusedError(message, reason);
      };
      try {
        const body = (req.body ?? {}) as Record<string, unknown>;
        if ('SAMLRequest' in body || 'SAMLRequest' in req.query || 'SAMLResponse' in req.query) {
          await refuse('not a POST-binding response', 'only SAML responses by the HTTP-POST binding are accepted here');
        }
        const decoded = decodeSamlResponse(body.SAMLResponse);
        if ('problem' in decoded) await refuse(decoded.problem, `the identity provider's answer was refused: ${decoded.problem}`);
        const failed = 'xml' in decoded ? statusProblem(decoded.xml) : undefined;
        if (failed) await refuse(failed.reason, `the identity provider reported an error (${failed.status}); ask your administrator to check the sign-in log of the identity provider`);

        const profile = await new Promise<Profile>((resolve, reject) => {
          auth.saml.passport.authenticate('saml', { session: false }, (err: unknown, user: { profile?: Profile } | false | undefined) => {
            if (err) return reject(err);
            if (!user || !user.profile) return reject(new Error('no profile in the SAML response'));
            resolve(user.profile);
          })(req, res, next);
        }).catch(async (err: unknown) => {
          if (asAppError(err)) throw err;
          // node-saml's reason (signature, audience, time, InResponseTo …) goes to the audit trail and log.
          const reason = err instanceof Error ? err.message.slice(0, 300) : 'invalid SAML response';
          return refuse(reason, `the identity provider's answer was refused: ${publicReason(reason)}`);
        });

        const redirect = await auth.signIn.completeSignIn(profile, ctx, (await auth.saml.idp()).entityId);
        res.set('Cache-Control', 'no-store').redirect(303, redirect);
      } catch (err) {
        next(err);
      }
    },
  );

  r.use('/auth/saml/acs', auditRefusals(deps.store, 'saml.login'));
  r.use('/auth/saml', signInErrorPage(deps.log));
  return r;
}

/** node-saml messages, shortened to what a person can act on. */
function publicReason(reason: string): string {
  // Before /signature/: node-saml words it "Invalid signature: multiple assertions".
  if (/multiple assertions/i.test(reason)) return 'it carries more than one assertion';
  if (/signature/i.test(reason)) return 'its signature is missing or does not verify';
  if (/audience/i.test(reason)) return 'it is meant for another service';
  // node-saml reports a wholly expired assertion as "No valid subject confirmation found …": the
  // only check behind that message is SubjectConfirmationData's NotBefore/NotOnOrAfter.
  if (/expired|not yet valid|too old|no valid subject confirmation/i.test(reason)) return 'it is expired or not yet valid (check the clocks)';
  if (/InResponseTo/i.test(reason)) return 'it does not answer a sign-in this server started, or was already used';
  if (/status|Responder|Requester/i.test(reason)) return 'the identity provider reported an error';
  if (/decrypt|Encrypted/i.test(reason)) return 'its encrypted assertion cannot be opened';
  return 'it is not a valid SAML response';
}
