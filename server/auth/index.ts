import type { AppDeps } from '../http/app';
import { SamlServiceProvider } from './saml-strategy';
import { SignInService } from './sign-in-service';
import { SigningKeyService } from './signing-keys';
import { jitProvisioner } from '../../backend/jit';

/** The sign-in layer's services, built once per app from the core's dependencies. */
export interface AuthServices {
  saml: SamlServiceProvider;
  signIn: SignInService;
  signingKeys: SigningKeyService;
}

export function createAuthServices(deps: AppDeps): AuthServices {
  const auth = deps.config.auth;
  const signingKeys = SigningKeyService.fromConfig(deps.config, deps.store, deps.kms);
  const signIn = new SignInService(deps.store, signingKeys, auth);
  if (deps.config.backend.jitProvisioning) signIn.jit = jitProvisioner(deps);
  return {
    // Writes go through the store so that on SQLite they never land in another request's transaction.
    saml: new SamlServiceProvider(auth, {
      save: (r) => deps.store.writeNow((t) => t.samlRequests.save(r)),
      peek: (id, now) => deps.store.repos.samlRequests.peek(id, now),
    }),
    signIn,
    signingKeys,
  };
}
