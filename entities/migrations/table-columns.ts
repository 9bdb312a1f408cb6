import type { TableColumnOptions } from 'typeorm';

/**
 * Column helpers for migrations, mirroring entities/columns.ts. Migrations use TypeORM's Table API
 * so the same file produces correct DDL on PostgreSQL, MariaDB/MySQL and SQLite. Migrations are
 * frozen once released: change the schema with a new migration, never by editing an old one.
 */
export const idCol = (name: string): TableColumnOptions => ({ name, type: 'varchar', length: '36', isPrimary: true });
export const refCol = (name: string, isNullable = false, isPrimary = false): TableColumnOptions => ({ name, type: 'varchar', length: '36', isNullable, isPrimary });
export const strCol = (name: string, length = 255, isNullable = false): TableColumnOptions => ({ name, type: 'varchar', length: String(length), isNullable });
export const textCol = (name: string, isNullable = false): TableColumnOptions => ({ name, type: 'text', isNullable });
export const flagCol = (name: string): TableColumnOptions => ({ name, type: 'boolean' });
export const intCol = (name: string): TableColumnOptions => ({ name, type: 'integer' });
export const timeCol = (name: string, isNullable = false): TableColumnOptions => ({ name, type: 'varchar', length: '24', isNullable });
