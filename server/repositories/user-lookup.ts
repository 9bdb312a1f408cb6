import type { EntityManager } from 'typeorm';
import { UserEntity, type UserRow } from '../../entities';

/** Finding the user an IdP vouched for, by the attribute the administrator chose. */
export class UserLookupRepository {
  constructor(private readonly m: EntityManager) {}

  byUserName(userName: string): Promise<UserRow | null> {
    return this.m.findOne(UserEntity, { where: { userNameNorm: userName.toLowerCase() } });
  }

  byExternalId(externalId: string): Promise<UserRow | null> {
    return this.m.findOne(UserEntity, { where: { externalId } });
  }

  /** Email is not unique: up to two rows, so the caller can refuse an ambiguous match. */
  byEmail(email: string): Promise<UserRow[]> {
    return this.m
      .getRepository(UserEntity)
      .createQueryBuilder('u')
      .where('LOWER(u.email) = :email', { email: email.toLowerCase() })
      .take(2)
      .getMany();
  }
}
