import type { EntityManager } from 'typeorm';
import { ApiTokenEntity, type ApiTokenRow } from '../../entities/scim';

export class ApiTokenRepository {
  constructor(private readonly manager: EntityManager) {}

  async insert(row: ApiTokenRow): Promise<void> {
    await this.manager.insert(ApiTokenEntity, row);
  }

  async findById(id: string): Promise<ApiTokenRow | null> {
    return this.manager.findOneBy(ApiTokenEntity, { id });
  }

  async list(): Promise<ApiTokenRow[]> {
    return this.manager.find(ApiTokenEntity, { order: { created_at: 'ASC', id: 'ASC' } });
  }

  async findByName(name: string): Promise<ApiTokenRow[]> {
    return this.manager.findBy(ApiTokenEntity, { name });
  }

  /** Returns true when a live token was revoked. */
  async revoke(id: string, at: string): Promise<boolean> {
    const r = await this.manager
      .createQueryBuilder()
      .update(ApiTokenEntity)
      .set({ revoked_at: at })
      .where('id = :id AND revoked_at IS NULL', { id })
      .execute();
    return (r.affected ?? 0) > 0;
  }

  async touch(id: string, at: string): Promise<void> {
    await this.manager.update(ApiTokenEntity, { id }, { last_used_at: at });
  }
}
