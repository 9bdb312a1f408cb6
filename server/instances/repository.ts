import type { EntityManager } from 'typeorm';
import type { Store } from '../repositories/store';
import { committedRead } from '../audit/search';

export const INSTANCES_TABLE = 'server_instances';

/** One serving process, as its heartbeat last recorded it (ISO timestamps). */
export interface InstanceRow {
  id: string;
  hostname: string;
  pid: number;
  /** cluster worker id under CS_WORKERS > 1, else null */
  worker: number | null;
  version: string;
  started_at: string;
  seen_at: string;
}

/**
 * Heartbeat rows. Each write is one statement, never inside a caller's transaction; on SQLite it
 * still takes the store's queue (a bare statement would land in another chain's open transaction).
 */
export class InstancesRepository {
  constructor(private readonly store: Store) {}

  private write<T>(fn: (m: EntityManager) => Promise<T>): Promise<T> {
    return this.store.driver === 'better-sqlite3' ? this.store.transaction((t) => fn(t.manager)) : fn(this.store.dataSource.manager);
  }

  /** Moves seen_at; inserts the row when it is missing (first beat, or removed meanwhile). */
  async beat(row: InstanceRow): Promise<void> {
    const updated = await this.write((m) => m.createQueryBuilder().update(INSTANCES_TABLE).set({ seen_at: row.seen_at }).where('id = :id', { id: row.id }).execute());
    if (updated.affected) return;
    await this.write((m) => m.createQueryBuilder().insert().into(INSTANCES_TABLE, ['id', 'hostname', 'pid', 'worker', 'version', 'started_at', 'seen_at']).values({ ...row }).orIgnore().execute());
  }

  async remove(id: string): Promise<void> {
    await this.write((m) => m.createQueryBuilder().delete().from(INSTANCES_TABLE).where('id = :id', { id }).execute());
  }

  /** Deletes rows last seen before `before`; returns how many. */
  async prune(before: string): Promise<number> {
    const r = await this.write((m) => m.createQueryBuilder().delete().from(INSTANCES_TABLE).where('seen_at < :before', { before }).execute());
    return r.affected ?? 0;
  }

  /** Rows seen at or after `since`, most recently seen first. */
  async seenSince(since: string): Promise<InstanceRow[]> {
    const rows = await committedRead(this.store, (m) =>
      m.createQueryBuilder().select(['i.id AS id', 'i.hostname AS hostname', 'i.pid AS pid', 'i.worker AS worker', 'i.version AS version', 'i.started_at AS started_at', 'i.seen_at AS seen_at']).from(INSTANCES_TABLE, 'i').where('i.seen_at >= :since', { since }).orderBy('i.seen_at', 'DESC').addOrderBy('i.id').getRawMany<InstanceRow>(),
    );
    return rows.map((r) => ({ ...r, pid: Number(r.pid), worker: r.worker === null || r.worker === undefined ? null : Number(r.worker) }));
  }
}
