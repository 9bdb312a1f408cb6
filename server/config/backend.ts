import { z } from 'zod';

const bool = z.stringbool({ truthy: ['true', '1', 'yes'], falsy: ['false', '0', 'no'] });

/** The cloud service's own API (/backend/v1, docs/backend-api.md). */
export const backendEnv = z.object({
  /** Record every change in the outbox for GET /backend/v1/changes even without a webhook (kept 30 days). */
  CS_BACKEND_CHANGE_FEED: bool.default(false),
  /** Create a user and their keys at their first SAML sign-in when no user matches (organisations without SCIM); off by default. */
  CS_JIT_PROVISIONING: bool.default(false),
});

export function backendConfig(e: z.infer<typeof backendEnv>) {
  return { backend: { changeFeed: e.CS_BACKEND_CHANGE_FEED, jitProvisioning: e.CS_JIT_PROVISIONING } };
}
