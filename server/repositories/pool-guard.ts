import type { DataSource } from 'typeorm';
import { ServiceUnavailableError } from '../errors';

/** Pool limits: connections per process and how long a request waits for one. */
export interface PoolSettings {
  size: number;
  acquireTimeoutMs: number;
}

export const DEFAULT_POOL: PoolSettings = { size: 10, acquireTimeoutMs: 5000 };

/** What a request that waited too long for a connection gets: a 503 the client may retry. */
export function poolTimeout(ms: number): ServiceUnavailableError {
  return new ServiceUnavailableError('the database is busy; retry later', {
    internalDetail: `no database connection became free within ${ms} ms (CS_DB_ACQUIRE_TIMEOUT_MS)`,
    retryAfter: Math.max(1, Math.ceil(ms / 1000)),
  });
}

/**
 * Watches connection acquisition so liveness can tell a wedged pool (every connection held,
 * requests waiting, nothing acquired for a long time) from a merely busy one.
 */
export class PoolWatch {
  private waiting = 0;
  private lastAcquiredAt = Date.now();
  private lastGaveUpAt = 0;

  /** Call when a request starts waiting; the returned function ends the wait. */
  begin(): (outcome: 'acquired' | 'gave-up') => void {
    this.waiting++;
    let done = false;
    return (outcome) => {
      if (done) return;
      done = true;
      this.waiting--;
      if (outcome === 'acquired') this.lastAcquiredAt = Date.now();
      else this.lastGaveUpAt = Date.now();
    };
  }

  /** How long requests have wanted a connection with none acquired (0 when nothing is wanting). */
  stalledForMs(now = Date.now()): number {
    const wanting = this.waiting > 0 || this.lastGaveUpAt > this.lastAcquiredAt;
    return wanting ? now - this.lastAcquiredAt : 0;
  }

  get waiters(): number {
    return this.waiting;
  }
}

type Callback = (err: Error | null, ...rest: unknown[]) => void;

/**
 * Puts a bound on waiting for a pooled connection, and records every wait in `watch`.
 * PostgreSQL: pg-pool's own connectionTimeoutMillis (set in data-source.ts) ends the wait; its
 * error becomes a 503. MariaDB: mysql2 3.x has no acquire timeout (only connectTimeout for a new
 * socket and queueLimit), so the wait is cut here and a connection that arrives late is released.
 */
export function guardPool(ds: DataSource, settings: PoolSettings, watch: PoolWatch): void {
  const type = ds.options.type;
  const driver = ds.driver as unknown as { master?: { connect: (cb: Callback) => void }; pool?: { getConnection: (cb: Callback) => void } };
  if (type === 'postgres' && driver.master) {
    const pool = driver.master;
    const connect = pool.connect.bind(pool);
    pool.connect = ((cb: Callback) => {
      const end = watch.begin();
      return connect((err, ...rest) => {
        end(err ? 'gave-up' : 'acquired');
        const timedOut = err && /timeout exceeded when trying to connect/.test(err.message);
        cb(timedOut ? poolTimeout(settings.acquireTimeoutMs) : err, ...rest);
      });
    }) as typeof pool.connect;
  } else if (type === 'mysql' && driver.pool) {
    const pool = driver.pool;
    const getConnection = pool.getConnection.bind(pool);
    pool.getConnection = (cb: Callback) => {
      const end = watch.begin();
      let answered = false;
      const timer = setTimeout(() => {
        answered = true;
        end('gave-up');
        cb(poolTimeout(settings.acquireTimeoutMs));
      }, settings.acquireTimeoutMs);
      getConnection((err, conn) => {
        clearTimeout(timer);
        if (answered) {
          // The caller has its 503 already; give the connection back to the next waiter.
          if (!err) (conn as { release: () => void }).release();
          return;
        }
        end(err ? 'gave-up' : 'acquired');
        cb(err, conn);
      });
    };
  }
}
