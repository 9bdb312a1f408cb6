import type { EntityManager } from 'typeorm';
import { GroupRotationTurnEntity } from '../../entities/group-rotation-turn';
import { uniqueViolation } from './db-errors';

/** Leases on group_rotation_turns. Each call is one short statement of its own: never hold it in a transaction. */
export class GroupTurnRepository {
  constructor(private readonly manager: EntityManager) {}

  /** Takes the group's turn for `holder` if nobody holds it or the holder's lease ran out. */
  async tryTake(groupId: string, holder: string, now: string, expiresAt: string): Promise<boolean> {
    const taken = await this.manager
      .createQueryBuilder()
      .update(GroupRotationTurnEntity)
      .set({ holder, expiresAt })
      .where('group_id = :groupId AND expires_at < :now', { groupId, now })
      .execute();
    if ((taken.affected ?? 0) > 0) return true;
    try {
      await this.manager.insert(GroupRotationTurnEntity, { groupId, holder, expiresAt });
      return true;
    } catch (err) {
      if (uniqueViolation(err)) return false; // held, and not expired
      throw err;
    }
  }

  /** Gives the turn back; a lease that was taken over meanwhile is left to its new holder. */
  async release(groupId: string, holder: string): Promise<void> {
    await this.manager.createQueryBuilder().delete().from(GroupRotationTurnEntity).where('group_id = :groupId AND holder = :holder', { groupId, holder }).execute();
  }
}
