import type { EntityManager } from 'typeorm';
import { KekEntity, type KekRow, type KekState } from '../../entities';

export class KeksRepository {
  constructor(private readonly m: EntityManager) {}

  async insert(row: KekRow): Promise<void> {
    await this.m.insert(KekEntity, row);
  }

  async setState(uri: string, state: KekState): Promise<void> {
    await this.m.update(KekEntity, { uri }, { state });
  }

  byState(state: KekState): Promise<KekRow[]> {
    return this.m.find(KekEntity, { where: { state }, order: { createdAt: 'ASC' } });
  }
}
