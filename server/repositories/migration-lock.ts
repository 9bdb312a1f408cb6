import type { DataSource } from 'typeorm';
import { ServiceUnavailableError } from '../errors';

/**
 * Serialises schema migrations between processes (replicas starting together, parallel
 * `crypto-server migrate` runs): the lock is held on a connection of its own while the migrations
 * run on others, so a second runner waits, then finds nothing pending. SQLite serves one process
 * and needs none.
 */
const PG_LOCK_KEY = 0x43_53_4d_47; // "CSMG": one fixed advisory-lock key for this application
const MARIADB_LOCK_NAME = 'crypto_server_migrations';

export class MigrationLockTimeoutError extends ServiceUnavailableError {
  constructor(seconds: number) {
    super('another process is migrating the database; this run changed nothing', {
      internalDetail: `the migration lock was held for more than ${seconds} s: is a migration stuck?`,
    });
  }
}

export async function withMigrationLock<T>(ds: DataSource, waitSeconds: number, fn: () => Promise<T>): Promise<T> {
  const type = ds.options.type;
  if (type !== 'postgres' && type !== 'mysql') return fn();
  const qr = ds.createQueryRunner();
  await qr.connect();
  try {
    if (type === 'postgres') {
      // lock_timeout bounds the wait for the advisory lock too.
      await qr.query(`SET lock_timeout = '${Math.floor(waitSeconds * 1000)}ms'`);
      try {
        await qr.query('SELECT pg_advisory_lock($1)', [PG_LOCK_KEY]);
      } catch (err) {
        if ((err as { code?: string; driverError?: { code?: string } }).driverError?.code === '55P03') throw new MigrationLockTimeoutError(waitSeconds);
        throw err;
      }
    } else {
      const rows: { got: number | string | null }[] = await qr.query('SELECT GET_LOCK(?, ?) AS got', [MARIADB_LOCK_NAME, waitSeconds]);
      if (Number(rows[0]?.got) !== 1) throw new MigrationLockTimeoutError(waitSeconds);
    }
    try {
      return await fn();
    } finally {
      await qr.query(type === 'postgres' ? 'SELECT pg_advisory_unlock($1)' : 'SELECT RELEASE_LOCK(?)', [type === 'postgres' ? PG_LOCK_KEY : MARIADB_LOCK_NAME]).catch(() => undefined);
    }
  } finally {
    // The connection goes back to the pool: it must not keep this session's lock_timeout.
    if (type === 'postgres') await qr.query('RESET lock_timeout').catch(() => undefined);
    await qr.release();
  }
}
