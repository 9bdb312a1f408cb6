import { z } from 'zod';
import { ConfigError } from '../errors';

/** A loopback host, where plain http is acceptable (tests, local evaluation). */
const LOOPBACK = /^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(\/|$)/;

/**
 * The Key Connector API for Bitwarden / Vaultwarden clients (docs/key-connector.md). Off unless
 * CS_KEY_CONNECTOR_ISSUER names the identity server whose tokens it accepts.
 */
export const keyConnectorEnv = z.object({
  /** The Bitwarden identity server, e.g. https://vault.example.com/identity; its discovery document and JWKS sign every accepted token. */
  CS_KEY_CONNECTOR_ISSUER: z
    .url({ protocol: /^https?$/ })
    .refine((u) => u.startsWith('https:') || LOOPBACK.test(u), 'must be an https:// URL (its JWKS decides which tokens are accepted); plain http only on a loopback address')
    .optional(),
  /** The web vault's URL; its origin is the only one allowed to call the API from a browser (CORS). */
  CS_KEY_CONNECTOR_WEB_VAULT_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** Path prefix of the API: `<public URL><path>` is the "Key Connector URL" in Bitwarden's SSO settings. */
  CS_KEY_CONNECTOR_PATH: z
    .string()
    .regex(/^\/[A-Za-z0-9._~\-/]*[A-Za-z0-9._~-]$/, 'must be a path such as /key-connector (leading slash, no trailing slash)')
    .default('/key-connector'),
  /** Refuse GET /user-keys when a SCIM user matching the token (externalId = sub, or email/userName = the token's email) is deactivated or deleted. */
  CS_KEY_CONNECTOR_REFUSE_DEACTIVATED: z.stringbool({ truthy: ['true', '1', 'yes'], falsy: ['false', '0', 'no'] }).default(false),
});

export interface KeyConnectorConfig {
  issuer: string;
  /** Exact origin (scheme://host[:port]) of the web vault, or undefined: no browser origin allowed. */
  webVaultOrigin: string | undefined;
  path: string;
  refuseDeactivated: boolean;
}

export function keyConnectorConfig(e: z.infer<typeof keyConnectorEnv>): { keyConnector: KeyConnectorConfig | undefined } {
  if (!e.CS_KEY_CONNECTOR_ISSUER) {
    if (e.CS_KEY_CONNECTOR_WEB_VAULT_URL) throw new ConfigError('CS_KEY_CONNECTOR_WEB_VAULT_URL: set CS_KEY_CONNECTOR_ISSUER too, or the Key Connector API stays off');
    return { keyConnector: undefined };
  }
  return {
    keyConnector: {
      issuer: e.CS_KEY_CONNECTOR_ISSUER.replace(/\/+$/, ''),
      webVaultOrigin: e.CS_KEY_CONNECTOR_WEB_VAULT_URL ? new URL(e.CS_KEY_CONNECTOR_WEB_VAULT_URL).origin : undefined,
      path: e.CS_KEY_CONNECTOR_PATH,
      refuseDeactivated: e.CS_KEY_CONNECTOR_REFUSE_DEACTIVATED,
    },
  };
}
