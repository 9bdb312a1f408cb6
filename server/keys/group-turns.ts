import { randomUUID } from 'node:crypto';
import type { Store } from '../repositories/store';
import { ownWrites } from '../repositories/runner';
import { GroupTurnRepository } from '../repositories/group-turns';

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
  constructor(
    private readonly store: Store,
    private readonly opts: { leaseMs: number; pollMs: number } = { leaseMs: 60_000, pollMs: 25 },
  ) {}

  /** Waits for the group's turn; resolves with the function that gives it back. */
  async take(groupId: string): Promise<() => Promise<void>> {
    const run = ownWrites(this.store, (m) => new GroupTurnRepository(m));
    const holder = `${process.pid}:${randomUUID()}`;
    for (;;) {
      const now = Date.now();
      if (await run((r) => r.tryTake(groupId, holder, new Date(now).toISOString(), new Date(now + this.opts.leaseMs).toISOString()))) break;
      // Jitter keeps waiting processes from polling in step.
      await new Promise((r) => setTimeout(r, this.opts.pollMs * (0.5 + Math.random())));
    }
    return () => run((r) => r.release(groupId, holder));
  }
}
