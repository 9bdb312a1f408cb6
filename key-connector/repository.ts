import type { EntityManager } from 'typeorm';
import { KeyConnectorUserKeyEntity, UserEntity, type KeyConnectorUserKeyRow } from '../entities';

/** Key Connector user keys; bound to one EntityManager (the default one or a transaction's). */
export class KeyConnectorRepository {
  constructor(private readonly m: EntityManager) {}

  find(sub: string): Promise<KeyConnectorUserKeyRow | null> {
    return this.m.findOneBy(KeyConnectorUserKeyEntity, { sub });
  }

  /** Fails with the database's unique violation when the sub already has a key (one writer wins). */
  async insert(row: KeyConnectorUserKeyRow): Promise<void> {
    await this.m.insert(KeyConnectorUserKeyEntity, row);
  }

  /** Replaces the key; false when the sub has none. */
  async replace(sub: string, wrappedKey: string, kekUri: string, at: string): Promise<boolean> {
    const r = await this.m.update(KeyConnectorUserKeyEntity, { sub }, { wrappedKey, kekUri, revisedAt: at });
    return (r.affected ?? 0) > 0;
  }

  async touch(sub: string, at: string): Promise<void> {
    await this.m.update(KeyConnectorUserKeyEntity, { sub }, { lastAccessAt: at });
  }

  /**
   * Whether a SCIM user linked to this identity is deactivated or deleted: externalId equal to the
   * sub, or userName / email equal to the token's email (case-insensitive).
   */
  async scimUserInactive(sub: string, email: string | undefined): Promise<boolean> {
    const q = this.m.createQueryBuilder(UserEntity, 'u').select('u.id').where('(NOT u.active OR u.deletedAt IS NOT NULL)');
    q.andWhere(email ? '(LOWER(u.externalId) = :sub OR u.userNameNorm = :email OR LOWER(u.email) = :email)' : 'LOWER(u.externalId) = :sub', { sub, email });
    return (await q.getCount()) > 0;
  }

  /** Subs already stored among `subs` (the importer's resume check). */
  async existing(subs: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    // In chunks: PostgreSQL takes at most 65,535 parameters per statement, SQLite 32,766.
    for (let i = 0; i < subs.length; i += 1000) {
      const chunk = subs.slice(i, i + 1000);
      const rows = await this.m.createQueryBuilder().select('k.sub', 'sub').from(KeyConnectorUserKeyEntity, 'k').where('k.sub IN (:...chunk)', { chunk }).getRawMany<{ sub: string }>();
      for (const r of rows) out.add(r.sub);
    }
    return out;
  }
}
