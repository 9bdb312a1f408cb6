import { EntitySchema } from 'typeorm';
import { ref, text, timestamp } from './columns';

export interface GroupMemberRow {
  groupId: string;
  userId: string;
  /** The group membership key as JWE compact to the member's public key. */
  memberJwe: string;
  createdAt: string;
}

export const GroupMemberEntity = new EntitySchema<GroupMemberRow>({
  name: 'GroupMember',
  tableName: 'group_members',
  columns: {
    groupId: { ...ref('group_id'), primary: true },
    userId: { ...ref('user_id'), primary: true },
    memberJwe: text('member_jwe'),
    createdAt: timestamp('created_at'),
  },
});
