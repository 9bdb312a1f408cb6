import type { EntityManager } from 'typeorm';
import { OutboxEntity, type OutboxRow } from '../../entities/scim';

/** The change feed's view of the outbox (the webhook's table): events after a sequence number, in order. */
export class ChangesRepository {
  constructor(private readonly m: EntityManager) {}

  after(seq: number, limit: number): Promise<OutboxRow[]> {
    return this.m.createQueryBuilder(OutboxEntity, 'o').where('o.seq > :seq', { seq }).orderBy('o.seq', 'ASC').limit(limit).getMany();
  }
}
