import { EntitySchema } from 'typeorm';
import { int, ref, str, text, timestamp } from './columns';

/**
 * One version of a group's keys. Every version stays (members must still open data written
 * under it); `group_keys` mirrors the current one. See docs/keys.md "Group key versions".
 */
export interface GroupKeyVersionRow {
  groupId: string;
  version: number;
  keyAlg: string;
  publicJwk: string;
  /** Group private key of this version, JWE compact under this version's membership key. */
  privateJwe: string;
  /** This version's membership key, envelope under kekUri, bound to the group (and, from version 2, the version). */
  wrappedMembershipKey: string;
  kekUri: string;
  createdAt: string;
}

/** The key columns a version row shares with `group_keys` (which mirrors the current version). */
export const groupKeyColumns = {
  keyAlg: str('key_alg', 32),
  publicJwk: text('public_jwk'),
  privateJwe: text('private_jwe'),
  wrappedMembershipKey: text('wrapped_membership_key'),
  kekUri: str('kek_uri', 512),
  createdAt: timestamp('created_at'),
};

export const GroupKeyVersionEntity = new EntitySchema<GroupKeyVersionRow>({
  name: 'GroupKeyVersion',
  tableName: 'group_key_versions',
  columns: {
    groupId: { ...ref('group_id'), primary: true },
    version: { ...int('version'), primary: true },
    ...groupKeyColumns,
  },
});

/** A version's membership key as JWE to one member's public key: one row per member per version. */
export interface GroupMemberKeyRow {
  groupId: string;
  userId: string;
  version: number;
  memberJwe: string;
  createdAt: string;
}

export const GroupMemberKeyEntity = new EntitySchema<GroupMemberKeyRow>({
  name: 'GroupMemberKey',
  tableName: 'group_member_keys',
  columns: {
    groupId: { ...ref('group_id'), primary: true },
    userId: { ...ref('user_id'), primary: true },
    version: { ...int('version'), primary: true },
    memberJwe: text('member_jwe'),
    createdAt: timestamp('created_at'),
  },
});
