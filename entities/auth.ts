import { EntitySchema } from 'typeorm';
import { ref, str, text, timestamp } from './columns';

/**
 * Protocol state of sign-in, in the database so any replica can continue what another began.
 * Times are ISO-8601 UTC strings (entities/columns.ts), so "expired" is a text comparison.
 */

/** A SAML AuthnRequest this server sent: answered at most once, before it expires. */
export interface SamlRequestRow {
  id: string;
  issuedAt: string;
  expiresAt: string;
  consumedAt: string | null;
  /** The pending OAuth authorize request the sign-in is for. */
  clientId: string;
  redirectUri: string;
  codeChallenge: string;
  state: string | null;
  createdAt: string;
}

export const SamlRequestEntity = new EntitySchema<SamlRequestRow>({
  name: 'SamlRequest',
  tableName: 'saml_requests',
  columns: {
    id: { ...str('id', 128), primary: true },
    issuedAt: str('issued_at', 32),
    expiresAt: timestamp('expires_at'),
    consumedAt: timestamp('consumed_at', true),
    clientId: str('client_id', 64),
    redirectUri: text('redirect_uri'),
    codeChallenge: str('code_challenge', 64),
    state: text('state', true),
    createdAt: timestamp('created_at'),
  },
});

/** A one-time authorization code, stored only as its SHA-256 digest. */
export interface AuthCodeRow {
  codeHash: string;
  clientId: string;
  redirectUri: string;
  codeChallenge: string;
  userId: string;
  expiresAt: string;
  consumedAt: string | null;
  createdAt: string;
}

export const AuthCodeEntity = new EntitySchema<AuthCodeRow>({
  name: 'AuthCode',
  tableName: 'auth_codes',
  columns: {
    codeHash: { ...str('code_hash', 64), primary: true },
    clientId: str('client_id', 64),
    redirectUri: text('redirect_uri'),
    codeChallenge: str('code_challenge', 64),
    userId: ref('user_id'),
    expiresAt: timestamp('expires_at'),
    consumedAt: timestamp('consumed_at', true),
    createdAt: timestamp('created_at'),
  },
});

/** Access-token signing keys: public JWK in clear, private JWK wrapped by the KMS. */
export type SigningKeyState = 'active' | 'retired';

export interface SigningKeyRow {
  kid: string;
  alg: string;
  publicJwk: string;
  /** Envelope (cs1.…) of the private JWK, bound to purpose=token-signing-key and kid. */
  wrappedPrivateJwk: string;
  kekUri: string;
  state: SigningKeyState;
  createdAt: string;
  retiredAt: string | null;
  /**
   * 1 for the first key, then one more per rotation; unique, so of several replicas rotating at
   * once only one commits (null: inserted by a release before generations).
   */
  generation: number | null;
}

export const SigningKeyEntity = new EntitySchema<SigningKeyRow>({
  name: 'SigningKey',
  tableName: 'signing_keys',
  columns: {
    kid: { ...str('kid', 64), primary: true },
    alg: str('alg', 16),
    publicJwk: text('public_jwk'),
    wrappedPrivateJwk: text('wrapped_private_jwk'),
    kekUri: str('kek_uri', 512),
    state: str('state', 16),
    createdAt: timestamp('created_at'),
    retiredAt: timestamp('retired_at', true),
    generation: { name: 'generation', type: 'integer', nullable: true },
  },
});
