import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors';

/** A loopback host, where plain http is acceptable (tests, local evaluation). */
const LOOPBACK = /^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(\/|$)/;

/**
 * The Key Connector API for Bitwarden / Vaultwarden clients (docs/key-connector.md). Off unless
 * CS_KEY_CONNECTOR_ISSUER names the identity server whose tokens it accepts.
 */
export const keyConnectorEnv = z.object({
  /**
   * The Bitwarden identity server, e.g. https://vault.example.com/identity (its discovery document and
   * JWKS sign every accepted token), or Vaultwarden's `<DOMAIN origin>|login` with the key file below.
   */
  CS_KEY_CONNECTOR_ISSUER: z
    .string()
    .refine((s) => isHttpUrl(s.replace(/\|login$/, '')), 'must be a URL (or, for Vaultwarden, <origin>|login)')
    .refine((s) => {
      const u = s.replace(/\|login$/, '');
      return u.startsWith('https:') || LOOPBACK.test(u);
    }, 'must be an https:// URL (its keys decide which tokens are accepted); plain http only on a loopback address')
    .optional(),
  /** Vaultwarden: PEM public key (or certificate) of its data/rsa_key.pem; tokens are then verified against it alone (RS256), no discovery. */
  CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE: z.string().min(1).optional(),
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
  /** Set: tokens are verified against this RSA key alone (Vaultwarden), `iss` compared exactly; unset: discovery + JWKS. */
  issuerPublicKey?: KeyObject;
  /** Exact origin (scheme://host[:port]) of the web vault, or undefined: no browser origin allowed. */
  webVaultOrigin: string | undefined;
  path: string;
  refuseDeactivated: boolean;
}

export function keyConnectorConfig(e: z.infer<typeof keyConnectorEnv>): { keyConnector: KeyConnectorConfig | undefined } {
  if (!e.CS_KEY_CONNECTOR_ISSUER) {
    if (e.CS_KEY_CONNECTOR_WEB_VAULT_URL) throw new ConfigError('CS_KEY_CONNECTOR_WEB_VAULT_URL: set CS_KEY_CONNECTOR_ISSUER too, or the Key Connector API stays off');
    if (e.CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE) throw new ConfigError('CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE: set CS_KEY_CONNECTOR_ISSUER too, or the Key Connector API stays off');
    return { keyConnector: undefined };
  }
  const vaultwarden = e.CS_KEY_CONNECTOR_ISSUER.endsWith('|login');
  if (vaultwarden && !e.CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE) {
    throw new ConfigError('CS_KEY_CONNECTOR_ISSUER: the Vaultwarden form <origin>|login needs CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE (Vaultwarden publishes no JWKS)');
  }
  if (vaultwarden) {
    // Vaultwarden's issuer is format!("{}|login", domain_origin()): scheme://host[:port], no path.
    const origin = e.CS_KEY_CONNECTOR_ISSUER.slice(0, -'|login'.length);
    if (new URL(origin).origin !== origin) throw new ConfigError(`CS_KEY_CONNECTOR_ISSUER: Vaultwarden's issuer is the origin of its DOMAIN followed by |login, here ${new URL(origin).origin}|login`);
  }
  return {
    keyConnector: {
      issuer: vaultwarden ? e.CS_KEY_CONNECTOR_ISSUER : e.CS_KEY_CONNECTOR_ISSUER.replace(/\/+$/, ''),
      issuerPublicKey: e.CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE ? readIssuerKey(e.CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE) : undefined,
      webVaultOrigin: e.CS_KEY_CONNECTOR_WEB_VAULT_URL ? new URL(e.CS_KEY_CONNECTOR_WEB_VAULT_URL).origin : undefined,
      path: e.CS_KEY_CONNECTOR_PATH,
      refuseDeactivated: e.CS_KEY_CONNECTOR_REFUSE_DEACTIVATED,
    },
  };
}

function isHttpUrl(s: string): boolean {
  try {
    return /^https?:$/.test(new URL(s).protocol);
  } catch {
    return false;
  }
}

/** An RSA public key from a PEM public key (SPKI or PKCS#1) or certificate; a private key is refused so it never sits in this server's config. */
function readIssuerKey(path: string): KeyObject {
  const name = 'CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE';
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${name}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'}); check the path and permissions`);
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new ConfigError(`${name}: holds a private key; give only its public half (openssl rsa -in rsa_key.pem -pubout)`);
  }
  let key: KeyObject;
  try {
    key = /-----BEGIN CERTIFICATE-----/.test(pem) ? new X509Certificate(pem).publicKey : createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw new ConfigError(`${name}: does not hold a PEM public key or certificate`);
  }
  if (key.asymmetricKeyType !== 'rsa') throw new ConfigError(`${name}: holds a ${key.asymmetricKeyType ?? 'non-RSA'} key; Vaultwarden signs with RSA (RS256)`);
  return key;
}
