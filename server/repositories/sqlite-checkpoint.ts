import { Worker } from 'node:worker_threads';
import { Counter } from 'prom-client';
import { registeredMetric } from '../metrics';

/**
 * SQLite's WAL checkpoints on a thread of their own (issue 10). With synchronous=NORMAL a commit
 * only appends to the WAL; the fsyncs happen at a checkpoint, which SQLite by default runs inside
 * the commit that takes the WAL past 1,000 pages — on the connection that committed, so on the
 * event loop: every request in flight waited for two fsyncs (in a profile under key-API load, a
 * fifth of the event loop's time was inside the audit commit). Here a worker thread with its own
 * connection runs a PASSIVE checkpoint every `intervalMs` (copies committed pages to the database
 * file and fsyncs, without blocking the writer or readers), and the writer's own automatic
 * checkpoint moves up to `writerPages`: it still runs if the WAL grows that far (the worker cannot
 * finish a checkpoint while commits keep arriving, and only a complete one lets the WAL start
 * over), and then has little left to copy. Durability is SQLite's synchronous=NORMAL as before (a
 * commit survives a crash of this process; an OS crash can drop what no checkpoint has synced
 * yet), now synced at least every `intervalMs` rather than every 1,000 pages. If the thread cannot
 * open the database or dies, the writer's default comes back.
 * Failures are not silent: each failed checkpoint counts in crypto_server_sqlite_checkpoint_failures_total,
 * and the app's log gets a warning when they start (then at most one per `warnEveryMs`), a line when
 * they stop, and a warning if the thread ends on its own.
 */

export interface CheckpointerOptions {
  intervalMs?: number;
  writerPages?: number;
  /** Each checkpoint's result, PRAGMA wal_checkpoint's: WAL frames and frames checkpointed (tests, metrics). */
  onCheckpoint?: (r: { log: number; checkpointed: number }) => void;
  /** Least time between two failure warnings (a failing disk must not write ten lines a second). */
  warnEveryMs?: number;
  /** Where failures are told (the app's logger); without one they are only counted. */
  log?: CheckpointLog;
}

/** Where checkpoint trouble is told: the app's logger (pino fits). */
export interface CheckpointLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

const FAILURES_METRIC = 'crypto_server_sqlite_checkpoint_failures_total';
const failures = registeredMetric(FAILURES_METRIC, () => new Counter({ name: FAILURES_METRIC, help: 'SQLite WAL checkpoints the checkpoint thread failed to run (and 1 each time the thread ended on its own)' }));

export interface Checkpointer {
  /** Stops the thread after a last checkpoint; resolves once it has closed its connection. */
  close(): Promise<void>;
}

/** SQLite's default wal_autocheckpoint, restored on the writer when the worker is gone. */
export const SQLITE_DEFAULT_AUTOCHECKPOINT = 1000;

// Plain JavaScript evaluated in the worker (the thread cannot load this TypeScript module under
// every runner); better-sqlite3 is resolved by the parent and passed in.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 0');
const checkpoint = () => {
  const [r] = db.pragma('wal_checkpoint(PASSIVE)');
  if (workerData.report) parentPort.postMessage({ done: { log: r.log, checkpointed: r.checkpointed } });
};
// A checkpoint that fails (an I/O error, the file locked by another process) is told to the parent
// and tried again at the next tick; meanwhile the writer's own automatic checkpoint bounds the WAL.
let failing = false;
const tick = () => {
  try {
    checkpoint();
    if (failing) parentPort.postMessage({ recovered: true });
    failing = false;
  } catch (err) {
    failing = true;
    parentPort.postMessage({ failed: [err.code, err.message].filter(Boolean).join(': ') });
  }
};
const timer = setInterval(tick, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  tick();
  db.close();
  parentPort.postMessage({ closed: true });
  parentPort.close();
});
`;

interface Pragmas {
  pragma(p: string): unknown;
  readonly open: boolean;
}

export function startCheckpointer(path: string, writer: Pragmas, o: CheckpointerOptions = {}): Checkpointer {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    // Results cross threads only for a listener: otherwise ten messages a second for nobody.
    workerData: { path, module: require.resolve('better-sqlite3'), intervalMs: o.intervalMs ?? 100, report: o.onCheckpoint !== undefined },
  });
  worker.unref(); // never what keeps the process alive
  const writerPages = o.writerPages ?? 4000;
  writer.pragma(`wal_autocheckpoint = ${writerPages}`);
  const report = failureReport(o.log, writerPages, o.warnEveryMs ?? 60_000);
  let closing = false;
  let died: string | undefined;
  // Settled when the thread has closed its connection (or ended), not at its exit: a thread's
  // teardown after its last statement took about a second under load (measured), a good part of
  // serve's 5 s bound on closing.
  let connectionClosed!: () => void;
  const closed = new Promise<void>((resolve) => (connectionClosed = resolve));
  const writerDefault = () => {
    if (writer.open) writer.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_AUTOCHECKPOINT}`);
  };
  worker.once('exit', (code) => {
    writerDefault();
    if (!closing) {
      failures.inc();
      o.log?.warn({ error: died ?? `exit code ${code}` }, `SQLite checkpoint thread ended; the writer checkpoints on its own again (every ${SQLITE_DEFAULT_AUTOCHECKPOINT} pages, inside a commit)`);
    }
    connectionClosed();
  });
  worker.on('message', (m: { done?: { log: number; checkpointed: number }; failed?: string; recovered?: true; closed?: true }) => {
    if (m.done) o.onCheckpoint?.(m.done);
    else if (m.failed !== undefined) report.failed(m.failed);
    else if (m.recovered) report.recovered();
    else if (m.closed) (writerDefault(), connectionClosed());
  });
  // A thread that cannot open the database ends (the exit handler gives the writer its default
  // back); the next commits checkpoint as SQLite always did.
  worker.on('error', (err: Error & { code?: string }) => (died = [err.code, err.message].filter(Boolean).join(': ')));
  return {
    close: () => {
      closing = true;
      worker.postMessage('close');
      return closed;
    },
  };
}

/**
 * Counts every failed checkpoint; warns at the first of a run, then at most once per `everyMs`
 * (also across runs: a flapping failure must not flood the log); tells when a warned run ends.
 */
function failureReport(log: CheckpointLog | undefined, writerPages: number, everyMs: number) {
  let run = 0;
  let warnedRun = false;
  let lastWarning = -Infinity;
  let unwarned = 0;
  return {
    failed(error: string) {
      failures.inc();
      run++;
      unwarned++;
      if (Date.now() - lastWarning < everyMs) return;
      lastWarning = Date.now();
      log?.warn({ error, failuresSinceLastWarning: unwarned }, `SQLite WAL checkpoint failed; the writer's own checkpoint (every ${writerPages} pages) bounds the WAL meanwhile`);
      warnedRun = true;
      unwarned = 0;
    },
    recovered() {
      if (warnedRun) log?.info({ failures: run }, 'SQLite WAL checkpoints succeed again');
      run = 0;
      warnedRun = false;
    },
  };
}
