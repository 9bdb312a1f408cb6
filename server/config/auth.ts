import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors';
import { redirectUriProblem } from '../auth/pkce';
import { originProblem } from '../http/cors';

/**
 * Settings of the sign-in layer: SAML service provider, OAuth clients, access tokens, CORS.
 * Parsed once at boot; a bad value stops start-up with a message that names the setting and never
 * echoes its value (certificates and keys are secrets or look like them).
 */
const bool = z.stringbool({ truthy: ['true', '1', 'yes'], falsy: ['false', '0', 'no'] });
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const authEnvSchema = z.object({
  CS_PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  CS_SAML_IDP_METADATA_FILE: z.string().min(1).optional(),
  // The metadata carries the certificates every assertion is checked against: fetch it only over
  // TLS (plain http only for a loopback IdP, e.g. in tests).
  CS_SAML_IDP_METADATA_URL: z
    .url({ protocol: /^https?$/ })
    .refine((u) => u.startsWith('https:') || /^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?\//.test(u), 'must be an https:// URL (the metadata holds the certificates that assertions are checked against)')
    .optional(),
  CS_SAML_IDP_CERTS: z.string().min(1).optional(),
  CS_SAML_IDP_CERT_FILE: z.string().min(1).optional(),
  CS_SAML_IDP_SSO_URL: z.url({ protocol: /^https?$/ }).optional(),
  CS_SAML_IDP_ENTITY_ID: z.string().min(1).optional(),
  CS_SAML_SP_ENTITY_ID: z.string().min(1).optional(),
  CS_SAML_SP_KEY_FILE: z.string().min(1).optional(),
  CS_SAML_SP_CERT_FILE: z.string().min(1).optional(),
  CS_SAML_CLOCK_SKEW_MS: int(0, 600_000).default(60_000),
  CS_SAML_REQUEST_TTL_SECONDS: int(30, 3600).default(600),
  CS_SAML_USER_ATTRIBUTE: z.enum(['nameid', 'email', 'userName', 'externalId']).default('nameid'),
  CS_SAML_USER_ATTRIBUTE_NAME: z.string().min(1).optional(),
  CS_SAML_NAMEID_FORMAT: z.enum(['emailAddress', 'persistent', 'unspecified', 'transient']).optional(),
  CS_SAML_ALLOW_UNSOLICITED: bool.default(false),
  CS_CORS_ORIGINS: z.string().default(''),
  CS_CORS_MAX_AGE_SECONDS: int(0, 86_400).default(600),
  CS_TOKEN_TTL_SECONDS: int(30, 3600).default(300),
  /** Sign-in requests (authorize, SAML ACS, token) per client address per minute; 0 = off. */
  CS_SIGNIN_RATE_LIMIT_PER_MINUTE: int(0, 100_000).default(300),
  CS_AUTH_CODE_TTL_SECONDS: int(10, 600).default(60),
  CS_TOKEN_KEY_ROTATION_DAYS: int(1, 365).default(30),
  CS_CLIENTS: z.string().min(1).optional(),
  CS_CLIENTS_FILE: z.string().min(1).optional(),
});
export type AuthEnv = z.infer<typeof authEnvSchema>;

export type UserAttribute = AuthEnv['CS_SAML_USER_ATTRIBUTE'];

const NAMEID_FORMATS = {
  emailAddress: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
  unspecified: 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
  persistent: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
  transient: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient',
} as const;

/**
 * The NameID format the SP metadata advertises and every AuthnRequest asks for (NameIDPolicy).
 * With CS_SAML_USER_ATTRIBUTE=nameid the NameID must equal the SCIM userName, which IdPs provision
 * from the UPN / email: ask for emailAddress, so an IdP whose default is transient (a new random
 * value per sign-in) is told what to send. When an attribute identifies the user the NameID is not
 * used: unspecified lets the IdP keep its default.
 */
function nameIdFormat(env: AuthEnv): string {
  const chosen = env.CS_SAML_NAMEID_FORMAT ?? (env.CS_SAML_USER_ATTRIBUTE === 'nameid' ? 'emailAddress' : 'unspecified');
  if (chosen === 'transient' && env.CS_SAML_USER_ATTRIBUTE === 'nameid') {
    throw new ConfigError('CS_SAML_NAMEID_FORMAT: transient NameIDs change at every sign-in and cannot identify a user while CS_SAML_USER_ATTRIBUTE is nameid; choose emailAddress, persistent or unspecified, or identify users by an attribute');
  }
  return NAMEID_FORMATS[chosen];
}

export interface ClientRegistration {
  clientId: string;
  name: string;
  redirectUris: readonly string[];
}

export interface IdpSettings {
  /** From CS_SAML_IDP_METADATA_URL: fetched (and refreshed) at run time. */
  metadataUrl?: string;
  /** Known at boot from a metadata file or explicit settings. */
  entityId?: string;
  ssoUrl?: string;
  certs: readonly string[];
}

export interface AuthConfig {
  /** Public base URL without trailing slash, e.g. https://crypto.example.com. */
  publicUrl: string;
  saml: {
    enabled: boolean;
    idp: IdpSettings;
    spEntityId: string;
    acsUrl: string;
    /** PEM; signs AuthnRequests and decrypts EncryptedAssertions. */
    spKey?: string;
    spCert?: string;
    clockSkewMs: number;
    requestTtlSeconds: number;
    userAttribute: UserAttribute;
    userAttributeName?: string;
    /** NameID format URN requested in AuthnRequests and advertised in the SP metadata. */
    nameIdFormat: string;
    allowUnsolicited: boolean;
  };
  cors: { origins: readonly string[]; maxAgeSeconds: number };
  tokens: { ttlSeconds: number; codeTtlSeconds: number; rotationDays: number; issuer: string; audience: string };
  clients: readonly ClientRegistration[];
  /** Sign-in requests per client address per minute (CS_SIGNIN_RATE_LIMIT_PER_MINUTE); 0 = off. */
  signInRateLimitPerMinute: number;
}

function readSetting(name: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${name}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'}); check the path and permissions`);
  }
}

/** PEM blocks or bare base64 DER bodies, separated by commas or whitespace between blocks. */
export function parseCertificates(name: string, text: string): string[] {
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  const bodies = pems
    ? pems.map((p) => p.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''))
    : text.split(/[,\s]+/).filter((s) => s.length > 0);
  if (bodies.length === 0) throw new ConfigError(`${name}: no certificate found`);
  for (const b of bodies) {
    if (!/^[A-Za-z0-9+/]+=*$/.test(b) || b.length < 200) throw new ConfigError(`${name}: holds something that is not a base64 X.509 certificate`);
  }
  return bodies.map((b) => `-----BEGIN CERTIFICATE-----\n${b.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`);
}

export function parseClients(name: string, text: string): ClientRegistration[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ConfigError(`${name}: is not valid JSON (expected [{"clientId": "...", "redirectUris": ["..."]}])`);
  }
  const schema = z
    .array(
      z.object({
        clientId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
        name: z.string().max(200).optional(),
        redirectUris: z.array(z.string()).min(1),
      }),
    )
    .max(1000);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`${name}: ${issue.path.join('.')}: ${issue.message}`);
  }
  const seen = new Set<string>();
  return parsed.data.map((c, i) => {
    if (seen.has(c.clientId)) throw new ConfigError(`${name}: client "${c.clientId}" is listed twice`);
    seen.add(c.clientId);
    c.redirectUris.forEach((u, j) => {
      const problem = redirectUriProblem(u);
      if (problem) throw new ConfigError(`${name}: [${i}].redirectUris[${j}] ${problem}`);
    });
    return Object.freeze({ clientId: c.clientId, name: c.name ?? c.clientId, redirectUris: Object.freeze([...c.redirectUris]) });
  });
}

/** Reads entity ID, redirect-binding SSO URL and signing certificates from IdP metadata XML. */
export function parseIdpMetadata(name: string, xml: string): { entityId: string; ssoUrl: string; certs: string[] } {
  if (/<!\s*(DOCTYPE|ENTITY)/i.test(xml)) throw new ConfigError(`${name}: metadata must not contain a DOCTYPE`);
  const entityId = /<(?:\w+:)?EntityDescriptor\b[^>]*\bentityID="([^"]+)"/.exec(xml)?.[1];
  const idp = /<(?:\w+:)?IDPSSODescriptor\b[\s\S]*?<\/(?:\w+:)?IDPSSODescriptor>/.exec(xml)?.[0];
  if (!entityId || !idp) throw new ConfigError(`${name}: not SAML IdP metadata (no EntityDescriptor with an IDPSSODescriptor)`);
  const sso = [...idp.matchAll(/<(?:\w+:)?SingleSignOnService\b[^>]*>/g)].map((m) => m[0]).find((t) => t.includes('bindings:HTTP-Redirect'));
  const ssoUrl = sso && /\bLocation="([^"]+)"/.exec(sso)?.[1];
  if (!ssoUrl) throw new ConfigError(`${name}: the IdP metadata offers no HTTP-Redirect SingleSignOnService`);
  const certs: string[] = [];
  for (const kd of idp.matchAll(/<(?:\w+:)?KeyDescriptor\b([^>]*)>([\s\S]*?)<\/(?:\w+:)?KeyDescriptor>/g)) {
    if (/\buse="encryption"/.test(kd[1])) continue;
    for (const c of kd[2].matchAll(/<(?:\w+:)?X509Certificate>([^<]+)<\/(?:\w+:)?X509Certificate>/g)) {
      certs.push(...parseCertificates(name, c[1]));
    }
  }
  if (certs.length === 0) throw new ConfigError(`${name}: the IdP metadata holds no signing certificate`);
  return { entityId: decodeXmlText(entityId), ssoUrl: decodeXmlText(ssoUrl), certs };
}

/** One start-up line: whether sign-in works and against which IdP, or which settings enable it. */
export function describeSignIn(auth: AuthConfig): string {
  const s = auth.saml;
  if (!s.enabled) {
    return 'SAML sign-in: not configured (set CS_SAML_IDP_METADATA_URL or CS_SAML_IDP_METADATA_FILE, see docs/saml.md); /oauth/authorize answers 503 until then';
  }
  const idp = s.idp.metadataUrl
    ? `IdP metadata from ${printableUrl(s.idp.metadataUrl)}${s.idp.entityId ? ` (entity ID ${s.idp.entityId})` : ' (entity ID read at the first sign-in)'}`
    : `IdP ${s.idp.entityId ?? '(entity ID not set: the assertion Issuer is not checked)'} at ${s.idp.ssoUrl}`;
  return `SAML sign-in: ${idp}; SP entity ID ${s.spEntityId}; users matched by ${s.userAttribute}; ${auth.clients.length} client(s) registered`;
}

/**
 * A URL as it may appear in logs: some IdPs put a signed token or an app secret in the metadata
 * URL's query (or credentials in its userinfo), so both are hidden; scheme, host and path stay.
 */
export function printableUrl(raw: string): string {
  try {
    const u = new URL(raw);
    const hidden = u.search ? '?…' : '';
    return `${u.protocol}//${u.host}${u.pathname}${hidden}`;
  } catch {
    return '(unparseable URL)';
  }
}

function decodeXmlText(s: string): string {
  return s.replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** Maps the parsed environment to the frozen auth configuration. */
/** `listen`: where the server listens, the default public URL for a local evaluation. */
export function authConfigFrom(env: AuthEnv, listen: { host: string; port: number; tls?: object } = { host: '127.0.0.1', port: 8080 }): AuthConfig {
  const host = listen.host === '0.0.0.0' || listen.host === '::' ? '127.0.0.1' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  const publicUrl = (env.CS_PUBLIC_URL ?? `${listen.tls ? 'https' : 'http'}://${host}:${listen.port}`).replace(/\/+$/, '');

  let idp: IdpSettings = { certs: [] };
  if (env.CS_SAML_IDP_METADATA_FILE && env.CS_SAML_IDP_METADATA_URL) {
    throw new ConfigError('CS_SAML_IDP_METADATA_URL and CS_SAML_IDP_METADATA_FILE: set only one (the URL is fetched and refreshed at run time, the file is read once at start-up)');
  }
  if (env.CS_SAML_IDP_METADATA_FILE) {
    const m = parseIdpMetadata('CS_SAML_IDP_METADATA_FILE', readSetting('CS_SAML_IDP_METADATA_FILE', env.CS_SAML_IDP_METADATA_FILE));
    idp = { entityId: m.entityId, ssoUrl: m.ssoUrl, certs: m.certs };
  } else if (env.CS_SAML_IDP_METADATA_URL) {
    idp = { metadataUrl: env.CS_SAML_IDP_METADATA_URL, certs: [] };
  }
  const explicitCerts = [
    ...(env.CS_SAML_IDP_CERTS ? parseCertificates('CS_SAML_IDP_CERTS', env.CS_SAML_IDP_CERTS) : []),
    ...(env.CS_SAML_IDP_CERT_FILE
      ? env.CS_SAML_IDP_CERT_FILE.split(',').flatMap((p) => parseCertificates('CS_SAML_IDP_CERT_FILE', readSetting('CS_SAML_IDP_CERT_FILE', p.trim())))
      : []),
  ];
  idp = {
    ...idp,
    // Explicit certificates are added to the metadata's (rollover: old and new both verify).
    certs: [...idp.certs, ...explicitCerts],
    ssoUrl: env.CS_SAML_IDP_SSO_URL ?? idp.ssoUrl,
    entityId: env.CS_SAML_IDP_ENTITY_ID ?? idp.entityId,
  };
  const enabled = Boolean(idp.metadataUrl || idp.ssoUrl || idp.certs.length > 0);
  if (enabled && !idp.metadataUrl) {
    if (!idp.ssoUrl) throw new ConfigError('CS_SAML_IDP_SSO_URL: required unless CS_SAML_IDP_METADATA_FILE or CS_SAML_IDP_METADATA_URL is set');
    if (idp.certs.length === 0) throw new ConfigError('CS_SAML_IDP_CERTS: at least one IdP signing certificate is required (or give the IdP metadata)');
  }

  if (Boolean(env.CS_SAML_SP_KEY_FILE) !== Boolean(env.CS_SAML_SP_CERT_FILE)) {
    throw new ConfigError('CS_SAML_SP_KEY_FILE and CS_SAML_SP_CERT_FILE: set both or neither');
  }
  const spKey = env.CS_SAML_SP_KEY_FILE ? readSetting('CS_SAML_SP_KEY_FILE', env.CS_SAML_SP_KEY_FILE) : undefined;
  if (spKey !== undefined && !/-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(spKey)) {
    throw new ConfigError('CS_SAML_SP_KEY_FILE: does not hold a PEM private key');
  }
  const spCert = env.CS_SAML_SP_CERT_FILE ? parseCertificates('CS_SAML_SP_CERT_FILE', readSetting('CS_SAML_SP_CERT_FILE', env.CS_SAML_SP_CERT_FILE))[0] : undefined;

  const origins = env.CS_CORS_ORIGINS.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  origins.forEach((o, i) => {
    const problem = originProblem(o);
    if (problem) throw new ConfigError(`CS_CORS_ORIGINS: entry ${i + 1} ${problem}`);
  });

  if (env.CS_CLIENTS && env.CS_CLIENTS_FILE) throw new ConfigError('CS_CLIENTS and CS_CLIENTS_FILE: set only one');
  const clients = env.CS_CLIENTS
    ? parseClients('CS_CLIENTS', env.CS_CLIENTS)
    : env.CS_CLIENTS_FILE
      ? parseClients('CS_CLIENTS_FILE', readSetting('CS_CLIENTS_FILE', env.CS_CLIENTS_FILE))
      : [];

  return Object.freeze({
    publicUrl,
    saml: Object.freeze({
      enabled,
      idp: Object.freeze({ ...idp, certs: Object.freeze([...idp.certs]) }),
      spEntityId: env.CS_SAML_SP_ENTITY_ID ?? `${publicUrl}/auth/saml/metadata`,
      acsUrl: `${publicUrl}/auth/saml/acs`,
      spKey,
      spCert,
      clockSkewMs: env.CS_SAML_CLOCK_SKEW_MS,
      requestTtlSeconds: env.CS_SAML_REQUEST_TTL_SECONDS,
      userAttribute: env.CS_SAML_USER_ATTRIBUTE,
      userAttributeName: env.CS_SAML_USER_ATTRIBUTE_NAME,
      nameIdFormat: nameIdFormat(env),
      allowUnsolicited: env.CS_SAML_ALLOW_UNSOLICITED,
    }),
    cors: Object.freeze({ origins: Object.freeze(origins), maxAgeSeconds: env.CS_CORS_MAX_AGE_SECONDS }),
    tokens: Object.freeze({
      ttlSeconds: env.CS_TOKEN_TTL_SECONDS,
      codeTtlSeconds: env.CS_AUTH_CODE_TTL_SECONDS,
      rotationDays: env.CS_TOKEN_KEY_ROTATION_DAYS,
      issuer: publicUrl,
      audience: `${publicUrl}/api`,
    }),
    clients: Object.freeze(clients),
    signInRateLimitPerMinute: env.CS_SIGNIN_RATE_LIMIT_PER_MINUTE,
  });
}
