import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { createConnection } from 'mysql2/promise';
import type { DatabaseConfig } from '../../server/config/core';

/**
 * The three databases every repository test runs on. Each call creates a fresh, uniquely named
 * database (engineers and CI may run suites in parallel on one machine) and `drop()` removes it.
 * PostgreSQL (127.0.0.1:5432, trust auth) and MariaDB (127.0.0.1:3306, root, no password) are
 * provided by the machine; SQLite is a temporary file.
 */
export interface TestDatabase {
  name: 'sqlite' | 'postgres' | 'mariadb';
  config: DatabaseConfig;
  /** The URL form, for CS_DATABASE_URL in process-level tests. */
  url: string;
  drop: () => Promise<void>;
}

const PG_ADMIN = process.env.CS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const MY_ADMIN = process.env.CS_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

const uniqueName = () => `cs_t_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;

export async function createSqlite(): Promise<TestDatabase> {
  const dir = mkdtempSync(join(tmpdir(), 'cs-db-'));
  const path = join(dir, 'test.db');
  return {
    name: 'sqlite',
    config: { type: 'sqlite', path, embedded: false, migrateOnStart: false },
    url: `sqlite:${path}`,
    drop: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

export async function createPostgres(): Promise<TestDatabase> {
  const name = uniqueName();
  const admin = new Client({ connectionString: PG_ADMIN });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = PG_ADMIN.replace(/\/[^/]*$/, `/${name}`);
  return {
    name: 'postgres',
    config: { type: 'postgres', url, embedded: false, migrateOnStart: false },
    url,
    drop: async () => {
      const c = new Client({ connectionString: PG_ADMIN });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

export async function createMariadb(): Promise<TestDatabase> {
  const name = uniqueName();
  const admin = await createConnection(MY_ADMIN);
  try {
    await admin.query(`CREATE DATABASE ${name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } finally {
    await admin.end();
  }
  const url = MY_ADMIN.replace(/\/[^/]*$/, `/${name}`);
  return {
    name: 'mariadb',
    config: { type: 'mysql', url, embedded: false, migrateOnStart: false },
    url,
    drop: async () => {
      const c = await createConnection(MY_ADMIN);
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name}`);
      } finally {
        await c.end();
      }
    },
  };
}

export const DATABASE_FACTORIES = { sqlite: createSqlite, postgres: createPostgres, mariadb: createMariadb } as const;
export type DatabaseName = keyof typeof DATABASE_FACTORIES;

/** The names to parametrise suites with: `describe.each(testDatabaseNames())(...)`. */
export function testDatabaseNames(only?: DatabaseName[]): DatabaseName[] {
  return only ?? ['sqlite', 'postgres', 'mariadb'];
}

export async function testDatabases(only?: DatabaseName[]): Promise<TestDatabase[]> {
  return Promise.all(testDatabaseNames(only).map((n) => DATABASE_FACTORIES[n]()));
}
