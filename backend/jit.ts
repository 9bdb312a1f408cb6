/**
 * Just-in-time provisioning at SAML sign-in (CS_JIT_PROVISIONING, off by default), for
 * organisations without SCIM: the first sign-in of a person no user matches creates the user and
 * their keys with the same rules as SCIM and POST /backend/v1/users. Attribute mapping:
 * docs/backend-api.md. Only a userName nobody has is created: a sign-in never takes over an
 * existing (deleted, deactivated or otherwise unmatched) user.
 */
import type { Profile } from '@node-saml/node-saml';
import { z } from 'zod';
import type { UserRow } from '../entities';
import type { JitProvisioner } from '../server/auth/sign-in-service';
import type { AppDeps } from '../server/http/app';
import { backendServiceFor } from './routes';
import { CreateUserBody } from './schemas';

const CLAIMS = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims';
/** Attribute names tried in order: plain names (Okta, Keycloak, ADFS custom rules) and the claim URIs Entra ID and ADFS send. */
const JIT_ATTRIBUTES = {
  email: ['email', 'mail', `${CLAIMS}/emailaddress`],
  givenName: ['givenName', 'firstName', `${CLAIMS}/givenname`],
  familyName: ['surname', 'sn', 'lastName', 'familyName', `${CLAIMS}/surname`],
  displayName: ['displayName', 'http://schemas.microsoft.com/identity/claims/displayname', `${CLAIMS}/name`],
} as const;

function first(profile: Profile, names: readonly string[]): string | undefined {
  const attrs = (profile.attributes ?? {}) as Record<string, unknown>;
  for (const n of names) {
    const v = attrs[n];
    const s = Array.isArray(v) ? v[0] : v;
    if (typeof s === 'string' && s.trim()) return s.trim().slice(0, 255);
  }
  return undefined;
}

/** The user a sign-in describes; the value users are matched by (CS_SAML_USER_ATTRIBUTE) becomes the userName. */
function jitUser(profile: Profile, matched: { value: string }, userAttribute: string): CreateUserBody {
  const email = userAttribute === 'email' ? matched.value : first(profile, JIT_ATTRIBUTES.email);
  const nameId = typeof profile.nameID === 'string' ? profile.nameID : undefined;
  return {
    userName: userAttribute === 'externalId' ? (nameId ?? matched.value) : matched.value,
    ...(email && z.email().safeParse(email).success ? { email } : {}),
    ...(userAttribute === 'externalId' ? { externalId: matched.value } : {}),
    givenName: first(profile, JIT_ATTRIBUTES.givenName),
    familyName: first(profile, JIT_ATTRIBUTES.familyName),
    displayName: first(profile, JIT_ATTRIBUTES.displayName),
  };
}

export function jitProvisioner(deps: AppDeps): JitProvisioner {
  const service = backendServiceFor(deps);
  return async (profile, matched, ctx): Promise<UserRow | null> => {
    const body = CreateUserBody.safeParse(jitUser(profile, matched, deps.config.auth.saml.userAttribute));
    if (!body.success) return null;
    const { created, user } = await service.createUser(body.data, { ...ctx, actor: 'saml:jit' });
    return created ? deps.store.repos.users.findById(user.id) : null;
  };
}
