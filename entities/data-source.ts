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
    options = { ...common, type: 'better-sqlite3', database: db.path, enableWAL: db.path !== ':memory:' };
  } else if (db.type === 'postgres') {
    options = { ...common, type: 'postgres', url: db.url };
  } else {
    options = { ...common, type: 'mysql', url: db.url, charset: 'utf8mb4_bin' };
  }
  return new DataSource(options);
}
