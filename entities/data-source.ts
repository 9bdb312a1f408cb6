import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DataSource, type DataSourceOptions } from 'typeorm';
import type { DatabaseConfig } from '../server/config/core';
import { DEFAULT_POOL } from '../server/repositories/pool-guard';
import { ENTITIES } from './index';
import { MIGRATIONS } from './migrations/index';

/** Builds the TypeORM data source for the configured database; never synchronizes the schema. */
export function createDataSource(db: DatabaseConfig): DataSource {
  const common = { entities: ENTITIES, migrations: MIGRATIONS, synchronize: false, migrationsRun: false, logging: false } as const;
  const pool = db.pool ?? DEFAULT_POOL;
  let options: DataSourceOptions;
  if (db.type === 'sqlite') {
    if (db.path !== ':memory:') mkdirSync(dirname(db.path), { recursive: true, mode: 0o700 });
    // WAL with synchronous=NORMAL: commits survive a crash of this process and never corrupt the
    // file; only an OS crash or power loss can drop the last moments. Production runs PostgreSQL.
    options = {
      ...common,
      type: 'better-sqlite3',
      database: db.path,
      enableWAL: db.path !== ':memory:',
      prepareDatabase: (conn: { pragma: (p: string) => unknown }) => {
        conn.pragma('synchronous = NORMAL');
        // Another process holding the write lock (a backup, a sqlite3 shell): wait as long as for a
        // pooled connection, then 503. better-sqlite3 waits synchronously, so keep it short.
        conn.pragma(`busy_timeout = ${Math.floor(pool.acquireTimeoutMs)}`);
      },
    };
  } else if (db.type === 'postgres') {
    // pg-pool's connectionTimeoutMillis bounds the wait for a free connection as well as a new one.
    options = { ...common, type: 'postgres', url: db.url, poolSize: pool.size, connectTimeoutMS: pool.acquireTimeoutMs };
  } else {
    // mysql2 bounds only a new connection's handshake; the queue wait is bounded in pool-guard.ts.
    options = { ...common, type: 'mysql', url: db.url, charset: 'utf8mb4_bin', poolSize: pool.size, connectTimeout: pool.acquireTimeoutMs };
  }
  return new DataSource(options);
}
