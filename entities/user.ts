import { EntitySchema } from 'typeorm';
import { flag, id, int, str, text, timestamp } from './columns';

export interface UserRow {
  id: string;
  userName: string;
  /** userName lower-cased: the unique key (SCIM userName is caseExact: false). */
  userNameNorm: string;
  externalId: string | null;
  displayName: string | null;
  email: string | null;
  givenName: string | null;
  familyName: string | null;
  active: boolean;
  /** The full SCIM resource as JSON (profile attributes only, never key material). */
  scimAttributes: string;
  createdAt: string;
  updatedAt: string;
  /** Set when deleted by the IdP; material is kept until purged after the retention period. */
  deletedAt: string | null;
  version: number;
}

export const UserEntity = new EntitySchema<UserRow>({
  name: 'User',
  tableName: 'users',
  columns: {
    id: id('id'),
    userName: str('user_name'),
    userNameNorm: str('user_name_norm'),
    externalId: str('external_id', 255, true),
    displayName: str('display_name', 255, true),
    email: str('email', 320, true),
    givenName: str('given_name', 255, true),
    familyName: str('family_name', 255, true),
    active: flag('active'),
    scimAttributes: text('scim_attributes'),
    createdAt: timestamp('created_at'),
    updatedAt: timestamp('updated_at'),
    deletedAt: timestamp('deleted_at', true),
    version: int('version'),
  },
});
