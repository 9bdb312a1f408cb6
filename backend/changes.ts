/**
 * GET /backend/v1/changes: the events the webhook carries, read from the same outbox, in order,
 * with a cursor (the outbox sequence number). At least once: a client stores the cursor after it
 * has processed a page; reading from an older cursor returns the same events again.
 *
 * Sequence numbers are taken at insert, but on PostgreSQL and MariaDB transactions commit in any
 * order: event 11 can be visible while event 10 is still in flight. A page therefore stops before
 * a gap in the sequence while the event after the gap is younger than GAP_GRACE_MS; an older gap
 * is a rolled-back write (nothing will ever fill it) and is passed.
 */
import type { OutboxRow } from '../entities/scim';
import type { Runner } from '../server/repositories/runner';
import type { ChangesRepository } from './repositories/changes';

export const GAP_GRACE_MS = 30_000;

export interface Change {
  /** The webhook's webhook-id: de-duplicate on it. */
  id: string;
  cursor: string;
  type: string;
  timestamp: string;
  resourceType: string;
  resourceId: string;
  data: unknown;
}

export interface ChangesPage {
  changes: Change[];
  /** Pass as `after` for the next page (the same cursor again when there was nothing new). */
  next: string;
  /** More events are ready now. */
  hasMore: boolean;
}

export class ChangeFeed {
  constructor(private readonly read: Runner<ChangesRepository>) {}

  async page(after: number, limit: number, now: Date = new Date()): Promise<ChangesPage> {
    const rows = await this.read((r) => r.after(after, limit + 1));
    const ready: OutboxRow[] = [];
    let expected = after + 1;
    const young = new Date(now.getTime() - GAP_GRACE_MS).toISOString();
    for (const row of rows) {
      // A gap followed by a recent event: an earlier write may still commit into it.
      if (row.seq !== expected && row.created_at > young) break;
      ready.push(row);
      expected = row.seq + 1;
    }
    const page = ready.slice(0, limit);
    return {
      changes: page.map((row) => {
        const payload = JSON.parse(row.payload) as { type: string; timestamp: string; data: unknown };
        return { id: row.event_id, cursor: String(row.seq), type: payload.type, timestamp: payload.timestamp, resourceType: row.resource_type, resourceId: row.resource_id, data: payload.data };
      }),
      next: String(page.length ? page[page.length - 1].seq : after),
      hasMore: ready.length > limit,
    };
  }
}
