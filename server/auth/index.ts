import type { AppDeps } from '../http/app';
import { SamlServiceProvider } from './saml-strategy';
import { SignInService } from './sign-in-service';
import { SigningKeyService } from './signing-keys';

/** The sign-in layer's services, built once per app from the core's dependencies. */
export interface AuthServices {
  saml: SamlServiceProvider;
  signIn: SignInService;
  signingKeys: SigningKeyService;
}

export function createAuthServices(deps: AppDeps): AuthServices {
  const auth = deps.config.auth;
  const signingKeys = new SigningKeyService(deps.store, deps.kms, {
    kekUri: deps.config.kms.kekUri,
    rotationDays: auth.tokens.rotationDays,
    tokenTtlSeconds: auth.tokens.ttlSeconds,
  });
  return {
    saml: new SamlServiceProvider(auth, deps.store.repos.samlRequests),
    signIn: new SignInService(deps.store, signingKeys, auth),
    signingKeys,
  };
}
