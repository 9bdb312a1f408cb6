import { EntitySchema } from 'typeorm';
import { int, ref, str, text, timestamp } from './columns';

export interface GroupKeysRow {
  groupId: string;
  keyAlg: string;
  publicJwk: string;
  /** Group private key, JWE compact under the group membership key. */
  privateJwe: string;
  /** Group membership key, envelope under kekUri, bound to the group. */
  wrappedMembershipKey: string;
  kekUri: string;
  createdAt: string;
  /** The current key version (group_key_versions holds every version, this one included). */
  keyVersion: number;
}

export const GroupKeysEntity = new EntitySchema<GroupKeysRow>({
  name: 'GroupKeys',
  tableName: 'group_keys',
  columns: {
    groupId: { ...ref('group_id'), primary: true },
    keyAlg: str('key_alg', 32),
    publicJwk: text('public_jwk'),
    privateJwe: text('private_jwe'),
    wrappedMembershipKey: text('wrapped_membership_key'),
    kekUri: str('kek_uri', 512),
    createdAt: timestamp('created_at'),
    keyVersion: { ...int('key_version'), default: 1 },
  },
});
