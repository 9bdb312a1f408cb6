import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DataSource, type DataSourceOptions } from 'typeorm';
import type { DatabaseConfig } from '../server/config/core';
import { ENTITIES } from './index';
import { MIGRATIONS } from './migrations/index';

/** Builds the TypeORM data source for the configured database; never synchronizes the schema. */
export function createDataSource(db: DatabaseConfig): DataSource {
  const common = { entities: ENTITIES, migrations: MIGRATIONS, synchronize: false, migrationsRun: false, logging: false } as const;
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
        conn.pragma('busy_timeout = 5000');
      },
    };
  } else if (db.type === 'postgres') {
    options = { ...common, type: 'postgres', url: db.url };
  } else {
    options = { ...common, type: 'mysql', url: db.url, charset: 'utf8mb4_bin' };
  }
  return new DataSource(options);
}
