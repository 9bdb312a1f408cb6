import type { EntityManager } from 'typeorm';
import { UserEntity, UserKeysEntity, type UserKeysRow, type UserRow } from '../../entities';
import { conflictingAttribute, uniqueViolation } from './db-errors';
import { ConflictError } from '../errors';

export class UsersRepository {
  constructor(private readonly m: EntityManager) {}

  async insert(user: UserRow, keys: UserKeysRow): Promise<void> {
    try {
      await this.m.insert(UserEntity, user);
      await this.m.insert(UserKeysEntity, keys);
    } catch (err) {
      const c = uniqueViolation(err);
      if (c) throw new ConflictError(`a user with this ${conflictingAttribute(c)} already exists`, { target: conflictingAttribute(c) });
      throw err;
    }
  }

  findById(id: string): Promise<UserRow | null> {
    return this.m.findOne(UserEntity, { where: { id } });
  }

  findByUserName(userName: string): Promise<UserRow | null> {
    return this.m.findOne(UserEntity, { where: { userNameNorm: userName.toLowerCase() } });
  }

  findKeys(userId: string): Promise<UserKeysRow | null> {
    return this.m.findOne(UserKeysEntity, { where: { userId } });
  }

  async findKeysMany(userIds: string[]): Promise<UserKeysRow[]> {
    if (userIds.length === 0) return [];
    return this.m.getRepository(UserKeysEntity).createQueryBuilder('k').where('k.userId IN (:...ids)', { ids: userIds }).getMany();
  }

  /** Applies a partial update and bumps version/updatedAt; maps uniqueness to ConflictError. */
  async update(id: string, patch: Partial<Omit<UserRow, 'id' | 'version' | 'createdAt'>>, now: string): Promise<void> {
    try {
      await this.m
        .createQueryBuilder()
        .update(UserEntity)
        .set({ ...patch, updatedAt: now, version: () => 'version + 1' })
        .where('id = :id', { id })
        .execute();
    } catch (err) {
      const c = uniqueViolation(err);
      if (c) throw new ConflictError(`a user with this ${conflictingAttribute(c)} already exists`, { target: conflictingAttribute(c) });
      throw err;
    }
  }

  /** Hard delete; user_keys and group_members follow by ON DELETE CASCADE. */
  async delete(id: string): Promise<void> {
    await this.m.delete(UserEntity, { id });
  }

  count(): Promise<number> {
    return this.m.count(UserEntity);
  }
}
