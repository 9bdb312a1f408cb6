import { EntitySchema } from 'typeorm';
import { id, int, str, text, timestamp } from './columns';

export interface GroupRow {
  id: string;
  displayName: string;
  /** displayName lower-cased: the unique key. */
  displayNameNorm: string;
  externalId: string | null;
  scimAttributes: string;
  createdAt: string;
  updatedAt: string;
  version: number;
  /** Who manages the group: `scim` (the IdP) or `app` (the backend API). Absent on insert: `scim`. */
  origin?: GroupOrigin;
}

export type GroupOrigin = 'scim' | 'app';

export const GroupEntity = new EntitySchema<GroupRow>({
  name: 'Group',
  tableName: 'groups',
  columns: {
    id: id('id'),
    displayName: str('display_name'),
    displayNameNorm: str('display_name_norm'),
    externalId: str('external_id', 255, true),
    scimAttributes: text('scim_attributes'),
    createdAt: timestamp('created_at'),
    updatedAt: timestamp('updated_at'),
    version: int('version'),
    origin: { ...str('origin', 8), default: 'scim' },
  },
});
