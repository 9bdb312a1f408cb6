/**
 * Whose turn it is to rotate a group's keys, across processes and replicas (server/keys/group-turns.ts).
 * A lease, not a lock: held with no transaction open while the KMS work runs, and taken over once
 * `expires_at` has passed, so a process that died holding it delays the group by one lease at most.
 */
import { EntitySchema } from 'typeorm';
import { str, timestamp } from './columns';

export interface GroupRotationTurnRow {
  groupId: string;
  holder: string;
  expiresAt: string;
}

export const GroupRotationTurnEntity = new EntitySchema<GroupRotationTurnRow>({
  name: 'GroupRotationTurn',
  tableName: 'group_rotation_turns',
  columns: {
    groupId: { ...str('group_id', 36), primary: true },
    holder: str('holder', 64),
    expiresAt: timestamp('expires_at'),
  },
});
