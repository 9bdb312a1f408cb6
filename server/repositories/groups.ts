import type { EntityManager } from 'typeorm';
import { GroupEntity, GroupKeysEntity, GroupMemberEntity, type GroupKeysRow, type GroupMemberRow, type GroupRow } from '../../entities';
import { mappingUniqueness } from './db-errors';

export class GroupsRepository {
  constructor(private readonly m: EntityManager) {}

  async insert(group: GroupRow, keys: GroupKeysRow): Promise<void> {
    await mappingUniqueness('group', async () => {
      await this.m.insert(GroupEntity, group);
      await this.m.insert(GroupKeysEntity, keys);
    });
  }

  findById(id: string): Promise<GroupRow | null> {
    return this.m.findOne(GroupEntity, { where: { id } });
  }

  findKeys(groupId: string): Promise<GroupKeysRow | null> {
    return this.m.findOne(GroupKeysEntity, { where: { groupId } });
  }

  async update(id: string, patch: Partial<Omit<GroupRow, 'id' | 'version' | 'createdAt'>>, now: string): Promise<void> {
    await mappingUniqueness('group', () =>
      this.m
        .createQueryBuilder()
        .update(GroupEntity)
        .set({ ...patch, updatedAt: now, version: () => 'version + 1' })
        .where('id = :id', { id })
        .execute(),
    );
  }

  async delete(id: string): Promise<void> {
    await this.m.delete(GroupEntity, { id });
  }
}

export interface MembershipWithGroupKeys {
  groupId: string;
  displayName: string;
  memberJwe: string;
  /** JWK JSON. */
  groupPublicJwk: string;
  groupPrivateJwe: string;
}

export class MembershipsRepository {
  constructor(private readonly m: EntityManager) {}

  async insertMany(rows: GroupMemberRow[]): Promise<void> {
    if (rows.length > 0) await this.m.insert(GroupMemberEntity, rows);
  }

  async deleteMany(groupId: string, userIds: string[]): Promise<number> {
    if (userIds.length === 0) return 0;
    const r = await this.m
      .createQueryBuilder()
      .delete()
      .from(GroupMemberEntity)
      .where('group_id = :groupId AND user_id IN (:...userIds)', { groupId, userIds })
      .execute();
    return r.affected ?? 0;
  }

  forGroup(groupId: string): Promise<GroupMemberRow[]> {
    return this.m.find(GroupMemberEntity, { where: { groupId }, order: { userId: 'ASC' } });
  }

  forUser(userId: string): Promise<GroupMemberRow[]> {
    return this.m.find(GroupMemberEntity, { where: { userId }, order: { groupId: 'ASC' } });
  }

  /** A user's memberships with each group's name and keys, in one query (the key API's hot path). */
  async withGroupKeysForUser(userId: string): Promise<MembershipWithGroupKeys[]> {
    const rows: Record<string, string>[] = await this.m
      .createQueryBuilder(GroupMemberEntity, 'm')
      .innerJoin(GroupEntity.options.name, 'g', 'g.id = m.groupId')
      .innerJoin(GroupKeysEntity.options.name, 'k', 'k.groupId = m.groupId')
      .select('m.group_id', 'groupId')
      .addSelect('m.member_jwe', 'memberJwe')
      .addSelect('g.display_name', 'displayName')
      .addSelect('k.public_jwk', 'groupPublicJwk')
      .addSelect('k.private_jwe', 'groupPrivateJwe')
      .where('m.user_id = :userId', { userId })
      .orderBy('m.group_id', 'ASC')
      .getRawMany();
    return rows.map((r) => ({
      groupId: r.groupId,
      memberJwe: r.memberJwe,
      displayName: r.displayName,
      groupPublicJwk: r.groupPublicJwk,
      groupPrivateJwe: r.groupPrivateJwe,
    }));
  }
}
