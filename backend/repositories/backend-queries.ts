/** Reads of the backend API: public keys of users, and groups as the backend sees them. */
import { IsNull, type EntityManager } from 'typeorm';
import { GroupEntity, GroupKeysEntity, GroupMemberEntity, UserEntity, UserKeysEntity, type UserKeysRow, type UserRow } from '../../entities';

/** Lookups per statement, far below every driver's parameter limit. */
const CHUNK = 500;
const chunks = <T>(xs: T[]): T[][] => Array.from({ length: Math.ceil(xs.length / CHUNK) }, (_, i) => xs.slice(i * CHUNK, (i + 1) * CHUNK));

export interface PublicKeyRow {
  userId: string;
  userName: string;
  email: string | null;
  keyAlg: string;
  publicJwk: string;
}

export interface GroupMemberView {
  userId: string;
  userName: string;
  memberJwe: string;
}

export interface GroupSummaryRow {
  id: string;
  name: string;
  origin: 'app' | 'scim';
  version: number;
  keyVersion: number;
  members: number;
  updatedAt: string;
}

export class BackendQueries {
  constructor(private readonly m: EntityManager) {}

  /** Public keys of active, not deleted users matching any of the given ids, userNames or emails (the last two case-insensitive). */
  async activePublicKeys(by: { ids: string[]; userNamesNorm: string[]; emailsLower: string[] }): Promise<PublicKeyRow[]> {
    const qb = this.m
      .createQueryBuilder(UserKeysEntity, 'k')
      .innerJoin(UserEntity.options.name, 'u', 'u.id = k.user_id')
      .select(['u.id AS user_id', 'u.user_name AS user_name', 'u.email AS email', 'k.key_alg AS key_alg', 'k.public_jwk AS public_jwk'])
      .where('u.deleted_at IS NULL AND u.active = :active', { active: true });
    const any: string[] = [];
    const params: Record<string, string[]> = {};
    if (by.ids.length) (any.push('u.id IN (:...ids)'), (params.ids = by.ids));
    if (by.userNamesNorm.length) (any.push('u.user_name_norm IN (:...names)'), (params.names = by.userNamesNorm));
    if (by.emailsLower.length) (any.push('LOWER(u.email) IN (:...emails)'), (params.emails = by.emailsLower));
    if (any.length === 0) return [];
    qb.andWhere(`(${any.join(' OR ')})`, params).orderBy('u.id', 'ASC');
    const rows = await qb.getRawMany<{ user_id: string; user_name: string; email: string | null; key_alg: string; public_jwk: string }>();
    return rows.map((r) => ({ userId: r.user_id, userName: r.user_name, email: r.email, keyAlg: r.key_alg, publicJwk: r.public_jwk }));
  }

  /** Live (not deleted) users among these ids and userNames (lower-cased): id → userName, and userName → id. */
  async liveUsers(ids: string[], userNamesNorm: string[]): Promise<{ byId: Map<string, string>; byName: Map<string, string> }> {
    const byId = new Map<string, string>();
    const byName = new Map<string, string>();
    const read = async (column: string, values: string[]) => {
      for (const c of chunks(values)) {
        const rows = await this.m
          .createQueryBuilder(UserEntity, 'u')
          .innerJoin(UserKeysEntity.options.name, 'k', 'k.user_id = u.id')
          .select(['u.id AS id', 'u.user_name_norm AS name_norm'])
          .where(`u.deleted_at IS NULL AND ${column} IN (:...c)`, { c })
          .getRawMany<{ id: string; name_norm: string }>();
        for (const r of rows) (byId.set(r.id, r.name_norm), byName.set(r.name_norm, r.id));
      }
    };
    await read('u.id', ids);
    await read('u.user_name_norm', userNamesNorm);
    return { byId, byName };
  }

  /** A live (not deleted) user by userName (case-insensitive) or id, with its keys. */
  async liveUser(by: { userNameNorm: string } | { id: string }): Promise<{ user: UserRow; keys: UserKeysRow } | null> {
    const where = 'id' in by ? { id: by.id, deletedAt: IsNull() } : { userNameNorm: by.userNameNorm, deletedAt: IsNull() };
    const user = await this.m.findOne(UserEntity, { where });
    const keys = user ? await this.m.findOne(UserKeysEntity, { where: { userId: user.id } }) : null;
    return user && keys ? { user, keys } : null;
  }

  /** A page of groups in id order after `after`, with key version and member count. */
  async groupPage(after: string | undefined, limit: number, origin?: 'app' | 'scim'): Promise<GroupSummaryRow[]> {
    const qb = this.m
      .createQueryBuilder(GroupEntity, 'g')
      .innerJoin(GroupKeysEntity.options.name, 'k', 'k.group_id = g.id')
      .select(['g.id AS id', 'g.display_name AS name', 'g.origin AS origin', 'g.version AS version', 'g.updated_at AS updated_at', 'k.key_version AS key_version'])
      .addSelect((sub) => sub.select('COUNT(*)').from(GroupMemberEntity.options.name, 'gm').where('gm.group_id = g.id'), 'members')
      .orderBy('g.id', 'ASC')
      .limit(limit);
    if (after !== undefined) qb.andWhere('g.id > :after', { after });
    if (origin) qb.andWhere('g.origin = :origin', { origin });
    const rows = await qb.getRawMany<{ id: string; name: string; origin: 'app' | 'scim'; version: number; updated_at: string; key_version: number; members: string | number }>();
    return rows.map((r) => ({ id: r.id, name: r.name, origin: r.origin, version: Number(r.version), keyVersion: Number(r.key_version), members: Number(r.members), updatedAt: r.updated_at }));
  }

  /** Members of a group who are live users, with their current-version JWE. */
  async members(groupId: string): Promise<GroupMemberView[]> {
    const rows = await this.m
      .createQueryBuilder(GroupMemberEntity, 'gm')
      .innerJoin(UserEntity.options.name, 'u', 'u.id = gm.user_id')
      .select(['gm.user_id AS user_id', 'u.user_name AS user_name', 'gm.member_jwe AS member_jwe'])
      .where('gm.group_id = :groupId AND u.deleted_at IS NULL', { groupId })
      .orderBy('gm.user_id', 'ASC')
      .getRawMany<{ user_id: string; user_name: string; member_jwe: string }>();
    return rows.map((r) => ({ userId: r.user_id, userName: r.user_name, memberJwe: r.member_jwe }));
  }
}
