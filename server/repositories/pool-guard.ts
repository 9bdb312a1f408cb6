import type { DataSource, QueryRunner } from 'typeorm';
import { ServiceUnavailableError } from '../errors';
import { connectionLost } from './db-errors';

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

/** SQLite's write lock stayed held by another process for the whole busy_timeout. */
export function sqliteLocked(ms: number): ServiceUnavailableError {
  return new ServiceUnavailableError('the database is busy; retry later', {
    internalDetail: `another process held the SQLite write lock for more than ${ms} ms (busy_timeout = CS_DB_ACQUIRE_TIMEOUT_MS)`,
    retryAfter: Math.max(1, Math.ceil(ms / 1000)),
  });
}

/** The database cannot be reached or dropped the connection: a 503, not a 500. */
export function databaseUnavailable(cause: unknown): ServiceUnavailableError {
  return new ServiceUnavailableError('the database is unavailable; retry later', {
    internalDetail: `database unavailable: ${String((cause as Error)?.message ?? cause).slice(0, 200)}`,
    retryAfter: 2,
    cause,
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

  /**
   * Call when a request starts waiting; the returned function ends the wait. 'failed' (the
   * database refused or is unreachable) is not a stall: a restart would not fix it.
   */
  begin(): (outcome: 'acquired' | 'gave-up' | 'failed') => void {
    this.waiting++;
    let done = false;
    return (outcome) => {
      if (done) return;
      done = true;
      this.waiting--;
      if (outcome === 'acquired') this.lastAcquiredAt = Date.now();
      else if (outcome === 'gave-up') this.lastGaveUpAt = Date.now();
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
  const driver = ds.driver as unknown as {
    master?: { connect: (cb: Callback) => void; totalCount: number };
    pool?: { getConnection: (cb: Callback) => void };
  };
  if (type === 'postgres' && driver.master) {
    const pool = driver.master;
    const connect = pool.connect.bind(pool);
    pool.connect = ((cb: Callback) => {
      const end = watch.begin();
      return connect((err, ...rest) => {
        if (!err) {
          end('acquired');
          return cb(null, ...rest);
        }
        // pg-pool says "timeout" both for a full pool and for a new connection that did not open.
        if (/timeout exceeded when trying to connect/.test(err.message)) {
          const exhausted = pool.totalCount >= settings.size;
          end(exhausted ? 'gave-up' : 'failed');
          return cb(exhausted ? poolTimeout(settings.acquireTimeoutMs) : databaseUnavailable(err));
        }
        end('failed');
        cb(connectionLost(err) ? databaseUnavailable(err) : err);
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
        end(err ? 'failed' : 'acquired');
        cb(err && connectionLost(err) ? databaseUnavailable(err) : err, conn);
      });
    };
  }
  if (type === 'postgres' || type === 'mysql') mapLostConnections(ds);
}

/**
 * A statement whose connection breaks (database restarted, failed over, network cut) fails with a
 * 503 the client can retry, reads included; the pool then replaces the connection.
 */
function mapLostConnections(ds: DataSource): void {
  const driver = ds.driver;
  const create = driver.createQueryRunner.bind(driver);
  driver.createQueryRunner = (mode) => {
    const qr: QueryRunner = create(mode);
    const query = qr.query.bind(qr) as (...args: unknown[]) => Promise<unknown>;
    (qr as { query: (...args: unknown[]) => Promise<unknown> }).query = (...args) =>
      query(...args).catch((err: unknown) => {
        throw connectionLost(err) ? databaseUnavailable(err) : err;
      });
    return qr;
  };
}
