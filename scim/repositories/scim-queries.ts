/**
 * Read queries for the SCIM endpoint: filtered, sorted, paginated lists in the database, and
 * single-resource reads with their key material. Conditions come from filter-sql.ts as SQL with
 * named parameters over the column maps below.
 */
import type { EntityManager, SelectQueryBuilder } from 'typeorm';
import { GroupEntity, GroupKeysEntity, GroupMemberEntity, UserEntity, UserKeysEntity, type GroupKeysRow, type GroupRow, type UserKeysRow, type UserRow } from '../../entities';
import type { ColumnMap, SqlCondition, SqlDialect } from '../filter-sql';
import type { ListedUser } from '../resources';
import { knownTotal, listUserPage, type UserGroups } from './user-list';
import { placeholderFor, placeholderList } from '../../server/repositories/placeholders';

/** SCIM attribute path (lower-case) → column, for filters and sortBy on /Users. */
export const USER_COLUMNS: ColumnMap = {
  id: { kind: 'string', expr: 'u.id', caseExact: true },
  username: { kind: 'string', expr: 'u.user_name_norm', caseExact: false, lowered: true, prefixIndexed: true },
  externalid: { kind: 'string', expr: 'u.external_id', caseExact: true, prefixIndexed: true },
  displayname: { kind: 'string', expr: 'u.display_name', caseExact: false },
  'name.givenname': { kind: 'string', expr: 'u.given_name', caseExact: false },
  'name.familyname': { kind: 'string', expr: 'u.family_name', caseExact: false },
  // The email column holds the work email (else the primary, else the first): see docs/scim.md.
  emails: { kind: 'string', expr: 'u.email', caseExact: false },
  'emails.value': { kind: 'string', expr: 'u.email', caseExact: false },
  'emails.type': { kind: 'string', expr: "'work'", caseExact: false },
  active: { kind: 'boolean', expr: 'u.active' },
  'meta.created': { kind: 'datetime', expr: 'u.created_at' },
  'meta.lastmodified': { kind: 'datetime', expr: 'u.updated_at' },
};

/** Members whose user the IdP deleted (kept for the retention period) are no longer members in SCIM. */
const LIVE_MEMBER_JOIN = 'gm.group_id = g.id AND EXISTS (SELECT 1 FROM users lu WHERE lu.id = gm.user_id AND lu.deleted_at IS NULL)';

export const GROUP_COLUMNS: ColumnMap = {
  id: { kind: 'string', expr: 'g.id', caseExact: true },
  displayname: { kind: 'string', expr: 'g.display_name_norm', caseExact: false, lowered: true },
  externalid: { kind: 'string', expr: 'g.external_id', caseExact: true },
  'meta.created': { kind: 'datetime', expr: 'g.created_at' },
  'meta.lastmodified': { kind: 'datetime', expr: 'g.updated_at' },
  members: { kind: 'exists', table: 'group_members', alias: 'gm', join: LIVE_MEMBER_JOIN, column: { kind: 'string', expr: 'gm.user_id', caseExact: true } },
  'members.value': { kind: 'exists', table: 'group_members', alias: 'gm', join: LIVE_MEMBER_JOIN, column: { kind: 'string', expr: 'gm.user_id', caseExact: true } },
};

export interface ListQuery {
  where?: SqlCondition;
  /** A column expression from the map. */
  orderBy?: string;
  descending?: boolean;
  /** 1-based. */
  startIndex: number;
  count: number;
}

export interface MemberView {
  userId: string;
  display: string | null;
  memberJwe: string;
}

export function dialectOf(manager: EntityManager): SqlDialect {
  const t = manager.connection.options.type;
  return t === 'postgres' ? 'postgres' : t === 'mysql' || t === 'mariadb' ? 'mysql' : 'sqlite';
}

function page<T extends object>(qb: SelectQueryBuilder<T>, q: ListQuery, alias: string): SelectQueryBuilder<T> {
  if (q.where) qb.andWhere(q.where.sql, q.where.params);
  // A stable order: the requested column, then id (unique) so pages never overlap or skip.
  if (q.orderBy) qb.orderBy(q.orderBy, q.descending ? 'DESC' : 'ASC').addOrderBy(`${alias}.id`, 'ASC');
  else qb.orderBy(`${alias}.created_at`, 'ASC').addOrderBy(`${alias}.id`, 'ASC');
  return qb.offset(q.startIndex - 1).limit(q.count);
}

function countWhere<T extends object>(qb: SelectQueryBuilder<T>, q: ListQuery): Promise<number> {
  if (q.where) qb.andWhere(q.where.sql, q.where.params);
  return qb.getCount();
}

export class ScimQueries {
  constructor(private readonly m: EntityManager) {}

  get dialect(): SqlDialect {
    return dialectOf(this.m);
  }

  /** A page of live users with their key rows (one statement), the total, and on PostgreSQL their groups (user-list.ts). */
  listUsers(q: ListQuery): Promise<{ total: number; rows: ListedUser[]; keys: Map<string, UserKeysRow>; groups?: UserGroups }> {
    return listUserPage(this.m, this.dialect, q);
  }

  async listGroups(q: ListQuery): Promise<{ total: number; rows: GroupRow[] }> {
    // Application-managed groups (the backend API's) are never shown to SCIM.
    const base = () => this.m.createQueryBuilder(GroupEntity, 'g').where("g.origin = 'scim'");
    const rows = q.count > 0 ? await page(base(), q, 'g').getMany() : [];
    return { total: knownTotal(q, rows.length) ?? (await countWhere(base(), q)), rows };
  }

  /** A live (not deleted) user; with `lock`, the row stays locked until the transaction ends. */
  async findUser(id: string, lock = false): Promise<UserRow | null> {
    const qb = this.m.createQueryBuilder(UserEntity, 'u').where('u.id = :id AND u.deleted_at IS NULL', { id });
    if (lock && this.dialect !== 'sqlite') qb.setLock('pessimistic_write');
    return qb.getOne();
  }

  async findGroup(id: string, lock = false): Promise<GroupRow | null> {
    const qb = this.m.createQueryBuilder(GroupEntity, 'g').where("g.id = :id AND g.origin = 'scim'", { id });
    if (lock && this.dialect !== 'sqlite') qb.setLock('pessimistic_write');
    return qb.getOne();
  }

  async userKeys(ids: string[]): Promise<Map<string, UserKeysRow>> {
    if (ids.length === 0) return new Map();
    const rows = await this.m.createQueryBuilder(UserKeysEntity, 'k').where('k.user_id IN (:...ids)', { ids }).getMany();
    return new Map(rows.map((r) => [r.userId, r]));
  }

  async groupKeys(ids: string[]): Promise<Map<string, GroupKeysRow>> {
    if (ids.length === 0) return new Map();
    const rows = await this.m.createQueryBuilder(GroupKeysEntity, 'k').where('k.group_id IN (:...ids)', { ids }).getMany();
    return new Map(rows.map((r) => [r.groupId, r]));
  }

  /** Members of several groups, with a display name, in one query. */
  async members(groupIds: string[]): Promise<Map<string, MemberView[]>> {
    const out = new Map<string, MemberView[]>(groupIds.map((id) => [id, []]));
    if (groupIds.length === 0) return out;
    const rows = await this.m
      .createQueryBuilder(GroupMemberEntity, 'gm')
      .innerJoin(UserEntity.options.name, 'u', 'u.id = gm.user_id')
      .select(['gm.group_id AS group_id', 'gm.user_id AS user_id', 'gm.member_jwe AS member_jwe', 'u.display_name AS display_name', 'u.user_name AS user_name'])
      .where('gm.group_id IN (:...groupIds) AND u.deleted_at IS NULL', { groupIds })
      .orderBy('gm.group_id', 'ASC')
      .addOrderBy('gm.user_id', 'ASC')
      .getRawMany<{ group_id: string; user_id: string; member_jwe: string; display_name: string | null; user_name: string }>();
    for (const r of rows) out.get(r.group_id)?.push({ userId: r.user_id, display: r.display_name ?? r.user_name, memberJwe: r.member_jwe });
    return out;
  }

  /** Those of `userIds` who are live members of one group (a PATCH naming a few members reads only them). */
  async membersAmong(groupId: string, userIds: string[]): Promise<MemberView[]> {
    if (userIds.length === 0) return [];
    const rows = await this.m
      .createQueryBuilder(GroupMemberEntity, 'gm')
      .innerJoin(UserEntity.options.name, 'u', 'u.id = gm.user_id')
      .select(['gm.user_id AS user_id', 'gm.member_jwe AS member_jwe', 'u.display_name AS display_name', 'u.user_name AS user_name'])
      .where('gm.group_id = :groupId AND gm.user_id IN (:...userIds) AND u.deleted_at IS NULL', { groupId, userIds })
      .orderBy('gm.user_id', 'ASC')
      .getRawMany<{ user_id: string; member_jwe: string; display_name: string | null; user_name: string }>();
    return rows.map((r) => ({ userId: r.user_id, display: r.display_name ?? r.user_name, memberJwe: r.member_jwe }));
  }

  /** The groups of several users (RFC 7643 User.groups, read-only), in one plain statement (every list page runs it). */
  async groupsOf(userIds: string[]): Promise<Map<string, { groupId: string; display: string }[]>> {
    const out = new Map<string, { groupId: string; display: string }[]>(userIds.map((id) => [id, []]));
    if (userIds.length === 0) return out;
    // GROUPS is a reserved word in MySQL 8.
    const groups = this.dialect === 'mysql' ? '`groups`' : '"groups"';
    const rows = (await this.m.query(
      `SELECT gm.user_id, gm.group_id, g.display_name FROM group_members gm JOIN ${groups} g ON g.id = gm.group_id
       WHERE gm.user_id IN (${placeholderList(placeholderFor(this.dialect), userIds.length)}) AND g.origin = 'scim' ORDER BY gm.user_id ASC, g.display_name_norm ASC`,
      userIds,
    )) as { user_id: string; group_id: string; display_name: string }[];
    for (const r of rows) out.get(r.user_id)?.push({ groupId: r.group_id, display: r.display_name });
    return out;
  }

  /** Which of these ids are live users. */
  async liveUserIds(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.m.createQueryBuilder(UserEntity, 'u').select('u.id', 'id').where('u.id IN (:...ids) AND u.deleted_at IS NULL', { ids }).getRawMany<{ id: string }>();
    return new Set(rows.map((r) => r.id));
  }

  /** Deleted users whose retention has run out. */
  async deletedBefore(before: string, limit: number): Promise<string[]> {
    const rows = await this.m
      .createQueryBuilder(UserEntity, 'u')
      .select('u.id', 'id')
      .where('u.deleted_at IS NOT NULL AND u.deleted_at < :before', { before })
      .orderBy('u.deleted_at', 'ASC')
      .limit(limit)
      .getRawMany<{ id: string }>();
    return rows.map((r) => r.id);
  }
}
