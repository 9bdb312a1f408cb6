import { randomUUID } from 'node:crypto';
import type { Store } from '../repositories/store';
import { ownWrites } from '../repositories/runner';
import { GroupTurnRepository } from '../repositories/group-turns';
import { ServiceUnavailableError } from '../errors';

export interface GroupTurnOptions {
  leaseMs: number;
  /** First wait between attempts; it doubles up to maxPollMs (each with jitter). */
  pollMs: number;
  maxPollMs: number;
  /** How long a caller waits for the turn before it is told to retry (503 + Retry-After). */
  maxWaitMs: number;
}

const DEFAULTS: GroupTurnOptions = { leaseMs: 60_000, pollMs: 25, maxPollMs: 500, maxWaitMs: 20_000 };

/**
 * Rotations of one group take turns across processes (CS_WORKERS, replicas): a lease row per
 * group, taken and given back in statements of their own, so the KMS work between runs with no
 * transaction, connection or SQLite writer held (property 7). Without it, two processes rotating
 * one group both did their KMS work and all but one were overtaken at commit, again and again,
 * until the group answered 503. Correctness never rests on the lease — each commit still
 * re-reads the group under its row lock — so a lease that runs out (a process died holding it)
 * only costs a wasted attempt.
 */
export class GroupTurns {
  private readonly opts: GroupTurnOptions;

  constructor(
    private readonly store: Store,
    opts: Partial<GroupTurnOptions> = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  /** Waits for the group's turn; resolves with the function that gives it back. */
  async take(groupId: string): Promise<() => Promise<void>> {
    const run = ownWrites(this.store, (m) => new GroupTurnRepository(m));
    const holder = `${process.pid}:${randomUUID()}`;
    const giveUpAt = Date.now() + this.opts.maxWaitMs;
    // A long rotation (a hung KMS, up to its deadline) must not have every waiter hitting the
    // database 40 times a second: the wait backs off, and a caller is not kept waiting forever.
    for (let wait = this.opts.pollMs; ; wait = Math.min(wait * 2, this.opts.maxPollMs)) {
      const now = Date.now();
      if (await run((r) => r.tryTake(groupId, holder, new Date(now).toISOString(), new Date(now + this.opts.leaseMs).toISOString()))) break;
      if (now >= giveUpAt) {
        throw new ServiceUnavailableError(`group ${groupId} is being re-keyed by another request; retry shortly`, { retryAfter: 2 });
      }
      // Jitter keeps waiting processes from polling in step.
      await new Promise((r) => setTimeout(r, Math.min(wait * (0.5 + Math.random()), Math.max(0, giveUpAt - now))));
    }
    return () => run((r) => r.release(groupId, holder));
  }
}
