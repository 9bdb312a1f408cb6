import type { EntityManager } from 'typeorm';
import type { Store } from './store';

/** Runs work against a repository: `run((repo) => repo.something())`. */
export type Runner<R> = <T>(fn: (repo: R) => Promise<T>) => Promise<T>;

/**
 * Runs small self-contained writes (token last-use, outbox delivery state, idempotency claims)
 * the way the store requires. On SQLite — one connection — through
 * `store.transaction()`, so they never land inside another request's open transaction (and roll
 * back with it). On PostgreSQL/MariaDB straight on the pool: a statement that fails there (a
 * claim's unique violation) must not abort a surrounding transaction. (Rate-limit counters have
 * their own driver-level path: server/repositories/rate-limit-hits.ts.)
 * Never call it from inside a store transaction.
 */
export function ownWrites<R>(store: Store, make: (m: EntityManager) => R): Runner<R> {
  return (fn) => (store.driver === 'better-sqlite3' ? store.transaction((tx) => fn(make(tx.manager))) : fn(make(store.dataSource.manager)));
}
