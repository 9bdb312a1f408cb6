import { EntitySchema } from 'typeorm';
import { int, ref } from './columns';
import { groupKeyColumns, type GroupKeyVersionRow } from './group-key-version';

/** The group's current key version: a mirror of its newest `group_key_versions` row. */
export interface GroupKeysRow extends Omit<GroupKeyVersionRow, 'version'> {
  /** The current key version (group_key_versions holds every version, this one included). */
  keyVersion: number;
}

export const GroupKeysEntity = new EntitySchema<GroupKeysRow>({
  name: 'GroupKeys',
  tableName: 'group_keys',
  columns: {
    groupId: { ...ref('group_id'), primary: true },
    ...groupKeyColumns,
    keyVersion: { ...int('key_version'), default: 1 },
  },
});
