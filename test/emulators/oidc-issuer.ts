import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { listen, sendJson, type Running } from './common';

/**
 * A Bitwarden-style identity server for the Key Connector tests: the OpenID discovery document at
 * `<issuer>/.well-known/openid-configuration` and its JWKS at `.../openid-configuration/jwks`
 * (IdentityServer's paths), and access tokens with Bitwarden's claim shape, copied from the decoded
 * token in bitwarden/clients libs/common/src/auth/services/token.service.spec.ts:
 * scope ["api", "offline_access"], amr ["Application"], client_id "web", sub a GUID (the user id).
 */
export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export interface OidcIssuer {
  issuer: string;
  /** Keys published in the JWKS; `keys[0]` signs by default. */
  keys: SigningKey[];
  /** Requests to the JWKS, to prove an unknown kid refetches it. */
  jwksRequests: number;
  /** Discovery and JWKS answer 503 while set. */
  down: boolean;
  newKey(): Promise<SigningKey>;
  /** A Bitwarden access token for `sub`; `claims` override or (undefined) remove claims. */
  token(sub: string, claims?: Record<string, unknown>, opts?: { key?: SigningKey; alg?: string; header?: Record<string, unknown>; expiresIn?: number }): Promise<string>;
  close(): Promise<void>;
}

export async function newSigningKey(alg = 'RS256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID().replace(/-/g, '').toUpperCase();
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export async function startOidcIssuer(): Promise<OidcIssuer> {
  let base = '';
  const state = { jwksRequests: 0, down: false };
  const keys: SigningKey[] = [await newSigningKey()];
  const running: Running = await listen((req, _body, res) => {
    if (state.down) return sendJson(res, 503, { error: 'down' });
    if (req.url === '/.well-known/openid-configuration') {
      return sendJson(res, 200, {
        issuer: base,
        jwks_uri: `${base}/.well-known/openid-configuration/jwks`,
        authorization_endpoint: `${base}/connect/authorize`,
        token_endpoint: `${base}/connect/token`,
        // HS256 advertised by a careless issuer must still never be accepted (HMAC keyed with the public key).
        id_token_signing_alg_values_supported: ['RS256', 'HS256'],
      });
    }
    if (req.url === '/.well-known/openid-configuration/jwks') {
      state.jwksRequests++;
      return sendJson(res, 200, { keys: keys.map((k) => k.publicJwk) });
    }
    sendJson(res, 404, { error: 'not_found' });
  });
  base = running.url;

  return {
    issuer: base,
    keys,
    get jwksRequests() {
      return state.jwksRequests;
    },
    get down() {
      return state.down;
    },
    set down(v: boolean) {
      state.down = v;
    },
    async newKey() {
      const k = await newSigningKey();
      keys.push(k);
      return k;
    },
    async token(sub, claims = {}, opts = {}) {
      const now = Math.floor(Date.now() / 1000);
      const payload: Record<string, unknown> = {
        nbf: now,
        iat: now,
        exp: now + (opts.expiresIn ?? 3600),
        iss: base,
        scope: ['api', 'offline_access'],
        amr: ['Application'],
        client_id: 'web',
        sub,
        auth_time: now,
        idp: 'bitwarden',
        premium: false,
        email: 'example@bitwarden.com',
        email_verified: false,
        sstamp: 'GY7JAO64CKKTKBB6ZEAUYL2WOQU7AST2',
        name: 'Test User',
        device: '4b872367-0da6-41a0-adcb-77f2feefc4f4',
        jti: randomUUID().replace(/-/g, '').toUpperCase(),
      };
      for (const [k, v] of Object.entries(claims)) {
        if (v === undefined) delete payload[k];
        else payload[k] = v;
      }
      const key = opts.key ?? keys[0];
      return new SignJWT(payload as JWTPayload).setProtectedHeader({ alg: opts.alg ?? 'RS256', kid: key.kid, typ: 'at+jwt', ...opts.header }).sign(key.privateKey);
    },
    close: () => running.close(),
  };
}
