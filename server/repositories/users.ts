import type { EntityManager } from 'typeorm';
import { UserEntity, UserKeysEntity, type UserKeysRow, type UserRow } from '../../entities';
import { mappingUniqueness } from './db-errors';

export class UsersRepository {
  constructor(private readonly m: EntityManager) {}

  async insert(user: UserRow, keys: UserKeysRow): Promise<void> {
    await mappingUniqueness('user', async () => {
      await this.m.insert(UserEntity, user);
      await this.m.insert(UserKeysEntity, keys);
    });
  }

  findById(id: string): Promise<UserRow | null> {
    return this.m.findOne(UserEntity, { where: { id } });
  }

  findByUserName(userName: string): Promise<UserRow | null> {
    return this.m.findOne(UserEntity, { where: { userNameNorm: userName.toLowerCase() } });
  }

  findByExternalId(externalId: string): Promise<UserRow | null> {
    return this.m.findOne(UserEntity, { where: { externalId } });
  }

  /** Email is not unique: up to two rows, so the caller can refuse an ambiguous match. */
  findByEmail(email: string): Promise<UserRow[]> {
    return this.m
      .getRepository(UserEntity)
      .createQueryBuilder('u')
      .where('LOWER(u.email) = :email', { email: email.toLowerCase() })
      .take(2)
      .getMany();
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
    await mappingUniqueness('user', () =>
      this.m
        .createQueryBuilder()
        .update(UserEntity)
        .set({ ...patch, updatedAt: now, version: () => 'version + 1' })
        .where('id = :id', { id })
        .execute(),
    );
  }

  /** Hard delete; user_keys and group_members follow by ON DELETE CASCADE. */
  async delete(id: string): Promise<void> {
    await this.m.delete(UserEntity, { id });
  }

  count(): Promise<number> {
    return this.m.count(UserEntity);
  }
}
