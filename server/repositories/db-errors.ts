import { ConflictError } from '../errors';

/**
 * Recognises unique-constraint violations from the three drivers, so the database (not code)
 * enforces uniqueness and we still answer a clean 409. Returns the violated constraint's name.
 */
export function uniqueViolation(err: unknown): string | undefined {
  const e = err as { code?: string; errno?: number; constraint?: string; message?: string; driverError?: unknown };
  const d = (e?.driverError ?? e) as typeof e;
  const message = String(d?.message ?? e?.message ?? '');
  if (d?.code === '23505') return d.constraint ?? 'unique';
  if (d?.code === 'ER_DUP_ENTRY' || d?.errno === 1062) return /for key '(?:[^.']+\.)?([^']+)'/.exec(message)?.[1] ?? 'unique';
  if (d?.code === 'SQLITE_CONSTRAINT_UNIQUE' || d?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    return /UNIQUE constraint failed: ([\w.]+)/.exec(message)?.[1] ?? 'unique';
  }
  return undefined;
}

/** Maps a constraint (or sqlite column list) to the attribute a client sent. */
export function conflictingAttribute(constraint: string): string {
  if (/user_name/.test(constraint)) return 'userName';
  if (/display_name/.test(constraint)) return 'displayName';
  if (/external_id/.test(constraint)) return 'externalId';
  return 'id';
}

/** Runs a write and turns a unique-constraint violation into a ConflictError naming the attribute. */
export async function mappingUniqueness<T>(resource: 'user' | 'group', write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    const c = uniqueViolation(err);
    if (!c) throw err;
    const target = conflictingAttribute(c);
    throw new ConflictError(`a ${resource} with this ${target} already exists`, { target });
  }
}

/**
 * The database connection went away under a statement (server restarted or failed over, backend
 * terminated, network cut). The transaction did not commit — or, if it broke during COMMIT, we
 * cannot know — so the client gets a 503 to retry rather than a 500, and the pool replaces the
 * connection.
 */
export function connectionLost(err: unknown): boolean {
  const e = err as { code?: string; errno?: number; message?: string; driverError?: unknown };
  const d = (e?.driverError ?? e) as typeof e;
  const code = String(d?.code ?? '');
  if (/^(57P01|57P02|57P03|08000|08003|08006|08001|08004)$/.test(code)) return true; // PostgreSQL
  if (/^(PROTOCOL_CONNECTION_LOST|ECONNRESET|EPIPE|ECONNREFUSED|ER_CONNECTION_KILLED|PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR)$/.test(code)) return true;
  if (d?.errno === 1927 || d?.errno === 2013 || d?.errno === 2006) return true; // MariaDB: killed, lost, gone away
  // TypeORM releases a PostgreSQL query runner whose connection emitted an error; the transaction's next statement then says so.
  // (EntityManager.query says it with QueryRunnerProviderAlreadyReleasedError.)
  if (/^QueryRunner(Provider)?AlreadyReleasedError$/.test(String((e as { name?: string })?.name))) return true;
  return /Connection terminated|connection is in closed state|Connection lost|server closed the connection/i.test(String(d?.message ?? e?.message ?? ''));
}

/** The database broke a lock cycle by rolling this transaction back (PostgreSQL 40P01, MariaDB 1213). */
export function deadlock(err: unknown): boolean {
  const e = err as { code?: string; errno?: number; driverError?: unknown };
  const d = (e?.driverError ?? e) as typeof e;
  return d?.code === '40P01' || d?.code === 'ER_LOCK_DEADLOCK' || d?.errno === 1213;
}

/** SQLite's write lock is held by another process (a backup, an operator's sqlite3 shell) past busy_timeout. */
export function sqliteBusy(err: unknown): boolean {
  const e = err as { code?: string; driverError?: { code?: string } };
  return /^SQLITE_(BUSY|LOCKED)/.test(String(e?.driverError?.code ?? e?.code ?? ''));
}
