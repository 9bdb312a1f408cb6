import { sqliteBusy } from './db-errors';
import type { SqliteDb } from './raw-driver';

/** Between tries while another process holds the write lock: SQLite's own busy handler starts at 1 ms too. */
const RETRY_MS = 1;

/**
 * Runs a synchronous SQLite write (better-sqlite3: the whole statement runs inside `write()`) so
 * that waiting for another process's write lock does not stop the event loop. busy_timeout waits
 * inside the statement, sleeping 1, 2, 5, 10 … ms with the process blocked; with several worker
 * processes (CS_WORKERS) on one SQLite file each key-API call's audit batch waited so, and a worker
 * waiting for the other served nothing meanwhile (issue 10). Here each try runs with busy_timeout 0
 * (set and restored around that one synchronous call, so no other statement sees it), and the tries
 * are timers: requests arriving meanwhile go on and join the next batch. After the connection's
 * busy_timeout (CS_DB_ACQUIRE_TIMEOUT_MS) the last SQLITE_BUSY is thrown, as busy_timeout would have.
 */
export async function writeWithoutBlockingOnLock<T>(db: SqliteDb, write: () => Promise<T>): Promise<T> {
  const busyMs = Number(db.pragma('busy_timeout', { simple: true }));
  const deadline = performance.now() + busyMs;
  for (;;) {
    let attempt: Promise<T>;
    db.pragma('busy_timeout = 0');
    try {
      attempt = write();
    } finally {
      db.pragma(`busy_timeout = ${busyMs}`);
    }
    try {
      return await attempt;
    } catch (err) {
      if (!sqliteBusy(err) || performance.now() >= deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}
