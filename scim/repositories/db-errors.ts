/** Recognises a unique-constraint violation from PostgreSQL, MariaDB/MySQL or SQLite (through TypeORM). */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; errno?: number; driverError?: { code?: string; errno?: number } } | undefined;
  const d = e?.driverError ?? e;
  return d?.code === '23505' || d?.code === 'ER_DUP_ENTRY' || d?.errno === 1062 || d?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || d?.code === 'SQLITE_CONSTRAINT_UNIQUE';
}
