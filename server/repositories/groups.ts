import type { EntityManager } from 'typeorm';
import {
  GroupEntity, GroupKeysEntity, GroupKeyVersionEntity, GroupMemberEntity, GroupMemberKeyEntity, UserEntity, UserKeysEntity,
  type GroupKeysRow, type GroupKeyVersionRow, type GroupMemberKeyRow, type GroupMemberRow, type GroupRow,
} from '../../entities';
import { mappingUniqueness } from './db-errors';
import { insertRows, type BulkInsert } from './bulk-rows';

/** Ids per IN list: far below every driver's parameter limit (multi-row INSERTs: bulk-rows.ts). */
const CHUNK = 500;
const chunks = <T>(xs: T[]): T[][] => Array.from({ length: Math.ceil(xs.length / CHUNK) }, (_, i) => xs.slice(i * CHUNK, (i + 1) * CHUNK));
const MEMBER_KEYS: BulkInsert = { table: 'group_member_keys', columns: ['group_id', 'user_id', 'version', 'member_jwe', 'created_at'] };
const MEMBERS: BulkInsert = { table: 'group_members', columns: ['group_id', 'user_id', 'member_jwe', 'created_at'] };
/** A member's current JWE: the row exists (a member), only member_jwe changes. */
const CURRENT_JWES: BulkInsert = { ...MEMBERS, upsert: { key: ['group_id', 'user_id'], set: ['member_jwe'] } };
const memberCells = (r: GroupMemberRow) => [r.groupId, r.userId, r.memberJwe, r.createdAt];
const versionRow = ({ keyVersion, ...k }: GroupKeysRow): GroupKeyVersionRow => ({ ...k, version: keyVersion });

export class GroupsRepository {
  constructor(private readonly m: EntityManager) {}

  async insert(group: GroupRow, keys: GroupKeysRow): Promise<void> {
    await mappingUniqueness('group', async () => {
      await this.m.insert(GroupEntity, group);
      await this.m.insert(GroupKeysEntity, keys);
      await this.m.insert(GroupKeyVersionEntity, versionRow(keys));
    });
  }

  /** The group row, locked until the transaction ends (SQLite: its transactions are serialised). */
  findByIdForUpdate(id: string): Promise<GroupRow | null> {
    const qb = this.m.createQueryBuilder(GroupEntity, 'g').where('g.id = :id', { id });
    if (this.m.connection.options.type !== 'better-sqlite3') qb.setLock('pessimistic_write');
    return qb.getOne();
  }

  /** Every key version of a group, oldest first. */
  versions(groupId: string): Promise<GroupKeyVersionRow[]> {
    return this.m.find(GroupKeyVersionEntity, { where: { groupId }, order: { version: 'ASC' } });
  }

  /** Makes `keys` the group's current version (a new version row, and group_keys mirrors it). */
  async addVersion(keys: GroupKeysRow): Promise<void> {
    await this.m.insert(GroupKeyVersionEntity, versionRow(keys));
    const { groupId, ...current } = keys;
    await this.m.update(GroupKeysEntity, { groupId }, current);
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

export interface MembershipVersion {
  groupId: string;
  displayName: string;
  version: number;
  currentVersion: number;
  memberJwe: string;
  /** JWK JSON. */
  publicJwk: string;
  privateJwe: string;
}

export class MembershipsRepository {
  constructor(private readonly m: EntityManager) {}

  async insertMany(rows: GroupMemberRow[]): Promise<void> {
    await insertRows(this.m, MEMBERS, rows.map(memberCells));
  }

  /** Member JWEs of any version (group_member_keys). */
  async insertKeys(rows: GroupMemberKeyRow[]): Promise<void> {
    await insertRows(this.m, MEMBER_KEYS, rows.map((r) => [r.groupId, r.userId, r.version, r.memberJwe, r.createdAt]));
  }

  /** Sets each member's current-version JWE (the copy in group_members) in bulk. */
  async setCurrentJwes(rows: GroupMemberRow[]): Promise<void> {
    await insertRows(this.m, CURRENT_JWES, rows.map(memberCells));
  }

  /** Removes memberships and the members' JWEs of every version. */
  async deleteMany(groupId: string, userIds: string[]): Promise<number> {
    let affected = 0;
    for (const c of chunks(userIds)) {
      await this.m.createQueryBuilder().delete().from(GroupMemberKeyEntity).where('group_id = :groupId AND user_id IN (:...c)', { groupId, c }).execute();
      const r = await this.m.createQueryBuilder().delete().from(GroupMemberEntity).where('group_id = :groupId AND user_id IN (:...c)', { groupId, c }).execute();
      affected += r.affected ?? 0;
    }
    return affected;
  }

  /** Which of `userIds` are members of the group: one indexed lookup per id, never the whole group. */
  async membersAmong(groupId: string, userIds: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (const c of chunks(userIds)) {
      const rows = await this.m
        .createQueryBuilder(GroupMemberEntity, 'm')
        .select('m.user_id', 'userId')
        .where('m.group_id = :groupId AND m.user_id IN (:...c)', { groupId, c })
        .getRawMany<{ userId: string }>();
      for (const r of rows) out.add(r.userId);
    }
    return out;
  }

  /** Every member id of a group (for a full replacement or a rotation, which are O(group) by nature). */
  async memberIds(groupId: string): Promise<string[]> {
    const rows = await this.m.createQueryBuilder(GroupMemberEntity, 'm').select('m.user_id', 'userId').where('m.group_id = :groupId', { groupId }).getRawMany<{ userId: string }>();
    return rows.map((r) => r.userId);
  }

  /** Public keys of live (not deleted) users among `userIds`. */
  async livePublicKeys(userIds: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const c of chunks(userIds)) {
      const rows = await this.m
        .createQueryBuilder(UserKeysEntity, 'k')
        .innerJoin(UserEntity.options.name, 'u', 'u.id = k.user_id')
        .select('k.user_id', 'userId')
        .addSelect('k.public_jwk', 'publicJwk')
        .where('k.user_id IN (:...c) AND u.deleted_at IS NULL', { c })
        .getRawMany<{ userId: string; publicJwk: string }>();
      for (const r of rows) out.set(r.userId, r.publicJwk);
    }
    return out;
  }

  /** Groups a user is a member of. */
  async groupIdsOf(userId: string): Promise<string[]> {
    const rows = await this.m.createQueryBuilder(GroupMemberEntity, 'm').select('m.group_id', 'groupId').where('m.user_id = :userId', { userId }).orderBy('m.group_id', 'ASC').getRawMany<{ groupId: string }>();
    return rows.map((r) => r.groupId);
  }

  /** A member's JWEs of every version of one group. */
  keysOf(groupId: string, userId: string): Promise<GroupMemberKeyRow[]> {
    return this.m.find(GroupMemberKeyEntity, { where: { groupId, userId }, order: { version: 'ASC' } });
  }

  forGroup(groupId: string): Promise<GroupMemberRow[]> {
    return this.m.find(GroupMemberEntity, { where: { groupId }, order: { userId: 'ASC' } });
  }

  forUser(userId: string): Promise<GroupMemberRow[]> {
    return this.m.find(GroupMemberEntity, { where: { userId }, order: { groupId: 'ASC' } });
  }

  /** A user's key versions of every group, newest version first per group, in one query (the key API's hot path). */
  async versionsForUser(userId: string): Promise<MembershipVersion[]> {
    const rows: Record<string, string | number>[] = await this.m
      .createQueryBuilder(GroupMemberKeyEntity, 'mk')
      .innerJoin(GroupEntity.options.name, 'g', 'g.id = mk.group_id')
      .innerJoin(GroupKeysEntity.options.name, 'k', 'k.group_id = mk.group_id')
      .innerJoin(GroupKeyVersionEntity.options.name, 'v', 'v.group_id = mk.group_id AND v.version = mk.version')
      .select('mk.group_id', 'groupId')
      .addSelect('mk.version', 'version')
      .addSelect('mk.member_jwe', 'memberJwe')
      .addSelect('g.display_name', 'displayName')
      .addSelect('k.key_version', 'currentVersion')
      .addSelect('v.public_jwk', 'publicJwk')
      .addSelect('v.private_jwe', 'privateJwe')
      .where('mk.user_id = :userId', { userId })
      .orderBy('mk.group_id', 'ASC')
      .addOrderBy('mk.version', 'DESC')
      .getRawMany();
    return rows.map((r) => ({
      groupId: String(r.groupId),
      displayName: String(r.displayName),
      version: Number(r.version),
      currentVersion: Number(r.currentVersion),
      memberJwe: String(r.memberJwe),
      publicJwk: String(r.publicJwk),
      privateJwe: String(r.privateJwe),
    }));
  }
}
