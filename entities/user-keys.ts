import { EntitySchema } from 'typeorm';
import { ref, str, text, timestamp } from './columns';

/** A user's key material, all of it encrypted or public. Never a plaintext key. */
export interface UserKeysRow {
  userId: string;
  keyAlg: string;
  /** Public key, JWK JSON. */
  publicJwk: string;
  /** Private key, JWE compact under the password key. */
  privateJwe: string;
  /** Password key, envelope (docs/wire-formats.md) under kekUri, bound to the user. */
  wrappedPasswordKey: string;
  kekUri: string;
  createdAt: string;
}

export const UserKeysEntity = new EntitySchema<UserKeysRow>({
  name: 'UserKeys',
  tableName: 'user_keys',
  columns: {
    userId: { ...ref('user_id'), primary: true },
    keyAlg: str('key_alg', 32),
    publicJwk: text('public_jwk'),
    privateJwe: text('private_jwe'),
    wrappedPasswordKey: text('wrapped_password_key'),
    kekUri: str('kek_uri', 512),
    createdAt: timestamp('created_at'),
  },
});
