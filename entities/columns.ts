import type { EntitySchemaColumnOptions } from 'typeorm';

/**
 * Column shapes shared by the entities, chosen to mean the same on PostgreSQL, MariaDB/MySQL and
 * SQLite. Timestamps are ISO-8601 UTC strings of fixed width (e.g. 2026-11-22T01:11:04.123Z):
 * they sort chronologically as text everywhere and never pass through a driver's time zone.
 */
export const id = (name: string): EntitySchemaColumnOptions => ({ name, type: 'varchar', length: 36, primary: true });
export const ref = (name: string, nullable = false): EntitySchemaColumnOptions => ({ name, type: 'varchar', length: 36, nullable });
export const str = (name: string, length = 255, nullable = false): EntitySchemaColumnOptions => ({ name, type: 'varchar', length, nullable });
export const text = (name: string, nullable = false): EntitySchemaColumnOptions => ({ name, type: 'text', nullable });
export const flag = (name: string): EntitySchemaColumnOptions => ({ name, type: 'boolean' });
export const int = (name: string): EntitySchemaColumnOptions => ({ name, type: 'integer' });
export const timestamp = (name: string, nullable = false): EntitySchemaColumnOptions => ({ name, type: 'varchar', length: 24, nullable });

export const nowIso = (): string => new Date().toISOString();
